//! Cross-crate integration tests for multidriver; the library target is
//! empty and the tests live in `tests/tests/`.
//!
//! Today they check what the repository ships beside the code: the profile
//! files under `profiles/` and the example route sets under
//! `examples/routes/`. Real libp2p swarms on loopback and network-namespace
//! tests join them with the engine's `Behaviour`.
