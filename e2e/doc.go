// Package e2e holds the end-to-end tests: real traffic through network
// namespaces, against a kernel with IPVS. On a host without IPVS those tests
// skip; `make e2e` runs them inside a qemu VM (e2e/vm/run.sh). The helpers
// they share are in e2e/lab.
package e2e
