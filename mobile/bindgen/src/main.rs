//! UniFFI's bindings generator, pinned to the UniFFI release
//! `multidriver-mobile` is built with (the generator and the scaffolding
//! must match). `mobile/bindings.sh` runs it; by hand:
//!
//! ```text
//! cargo build -p multidriver-mobile
//! cargo run -p multidriver-uniffi-bindgen -- generate \
//!     --library target/debug/libmultidriver_mobile.so --language kotlin --out-dir out/
//! ```

fn main() {
    uniffi::uniffi_bindgen_main()
}
