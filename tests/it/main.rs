//! Black-box tests of the `eddy` binary: one integration test binary, one module per area.
