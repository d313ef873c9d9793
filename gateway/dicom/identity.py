"""This implementation's identity on the wire (PS3.7 D.3.3.2): its own class UID and version name.

The UID is under the 2.25 root (PS3.5 B.2, a UUID as a decimal integer), fixed for this product.
"""

IMPLEMENTATION_CLASS_UID = "2.25.211826508049113193358415653718601850479"
IMPLEMENTATION_VERSION_NAME = "EDGEGW_010"
