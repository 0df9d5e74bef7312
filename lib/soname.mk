# libtool -version-info for libaiplat, CURRENT:REVISION:AGE.
# This is the only place it is set. Rules (docs/decisions/0004-abi-and-versioning.md):
#  - any change to the library's source: REVISION++
#  - an interface added:        CURRENT++, REVISION=0, AGE++
#  - an interface removed or changed incompatibly: CURRENT++, REVISION=0, AGE=0
#    (this changes the SONAME and the Debian package name libaiplat<N>)
AIPLAT_LT_VERSION_INFO = 0:0:0
