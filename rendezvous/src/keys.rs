//! Key files: an Ed25519 keypair in libp2p's protobuf key encoding, readable
//! by the owner only.

use std::io::Write;
use std::path::Path;

use libp2p::identity::Keypair;

use crate::Error;

/// Largest key file read (an Ed25519 key is 68 bytes encoded).
const MAX_KEY_BYTES: u64 = 4096;

/// Writes a new Ed25519 key to `path`, which must not exist (an operator's
/// identity is never overwritten by accident), with mode 0600 on Unix.
pub fn generate(path: &Path) -> Result<Keypair, Error> {
    let key = Keypair::generate_ed25519();
    let bytes = key.to_protobuf_encoding().map_err(|e| Error::Key {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let io = |e: std::io::Error| Error::Io {
        path: path.to_owned(),
        source: e,
    };
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Key {
                path: path.to_owned(),
                message: "already exists; refusing to overwrite a key".into(),
            }
        } else {
            io(e)
        }
    })?;
    file.write_all(&bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(key)
}

/// Reads the key at `path`.
pub fn read(path: &Path) -> Result<Keypair, Error> {
    let bad = |message: String| Error::Key {
        path: path.to_owned(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            bad("not found; create one with `multidriver rendezvous genkey --out <file>`".into())
        } else {
            Error::Io {
                path: path.to_owned(),
                source: e,
            }
        }
    })?;
    if meta.len() > MAX_KEY_BYTES {
        return Err(bad(format!(
            "{} bytes; a key file is under {MAX_KEY_BYTES}",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.to_owned(),
        source: e,
    })?;
    Keypair::from_protobuf_encoding(&bytes).map_err(|e| bad(format!("not a libp2p key: {e}")))
}

/// Reads the key at `path`, or generates one there if there is none.
pub fn read_or_generate(path: &Path) -> Result<Keypair, Error> {
    if path.exists() {
        read(path)
    } else {
        generate(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_read_back_and_are_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("md-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k");
        let _ = std::fs::remove_file(&path);
        let key = generate(&path).unwrap();
        assert_eq!(read(&path).unwrap().public(), key.public());
        let e = generate(&path).unwrap_err();
        assert!(e.to_string().contains("refusing to overwrite"), "{e}");
        std::fs::write(&path, b"garbage").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("not a libp2p key"), "{e}");
        let e = read(&dir.join("missing")).unwrap_err().to_string();
        assert!(e.contains("genkey"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
