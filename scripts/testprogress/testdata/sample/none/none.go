package none

// N is a package without tests.
const N = 1
