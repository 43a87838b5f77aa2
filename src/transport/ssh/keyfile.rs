//! Loading private key files, with passphrases from the environment or the terminal.
//!
//! Decrypted keys are cached per path for the whole process: a run connects to many hosts
//! with the same key, and neither the prompt nor the (deliberately slow) bcrypt KDF should be
//! repeated per host.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use russh::keys::{PrivateKey, load_secret_key};

use crate::transport::ConnectError;

/// Passphrase for encrypted keys when no terminal is available (CI).
pub const PASSPHRASE_ENV: &str = "PROVISION_SSH_KEY_PASSPHRASE";

static CACHE: LazyLock<Mutex<HashMap<PathBuf, Arc<PrivateKey>>>> = LazyLock::new(Default::default);

/// Parallel connects must not prompt on the terminal at the same time.
static PROMPT_LOCK: Mutex<()> = Mutex::new(());

/// Load (and decrypt if needed) the key at `path`. Runs on the blocking pool because
/// decryption and the prompt block.
pub(super) async fn load(path: &Path, allow_prompt: bool) -> Result<Arc<PrivateKey>, ConnectError> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || load_blocking(&owned, allow_prompt))
        .await
        .unwrap_or_else(|e| Err(key_error(path, format!("loading failed: {e}"))))
}

fn load_blocking(path: &Path, allow_prompt: bool) -> Result<Arc<PrivateKey>, ConnectError> {
    if let Some(key) = cached(path) {
        return Ok(key);
    }
    let key = match load_secret_key(path, None) {
        Ok(key) => Arc::new(key),
        Err(russh::keys::Error::KeyIsEncrypted) => decrypt(path, allow_prompt)?,
        Err(russh::keys::Error::IO(e)) => return Err(key_error(path, format!("cannot read: {e}"))),
        Err(e) => return Err(key_error(path, format!("not a usable private key ({e})"))),
    };
    remember(path, &key);
    Ok(key)
}

/// The environment variable wins; otherwise ask on the terminal when allowed, up to 3 times.
fn decrypt(path: &Path, allow_prompt: bool) -> Result<Arc<PrivateKey>, ConnectError> {
    if let Ok(pass) = std::env::var(PASSPHRASE_ENV) {
        return load_secret_key(path, Some(&pass))
            .map(Arc::new)
            .map_err(|_| {
                key_error(
                    path,
                    format!("the passphrase in {PASSPHRASE_ENV} does not decrypt it"),
                )
            });
    }
    if !allow_prompt || !std::io::stdin().is_terminal() {
        return Err(key_error(
            path,
            format!(
                "the key is encrypted and no passphrase can be asked for here; add it to ssh-agent (ssh-add) or set {PASSPHRASE_ENV}"
            ),
        ));
    }
    let _guard = PROMPT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    // Another connection may have asked for this very key while we waited for the lock.
    if let Some(key) = cached(path) {
        return Ok(key);
    }
    for _ in 0..3 {
        let pass = prompt(path)?;
        if let Ok(key) = load_secret_key(path, Some(&pass)) {
            let key = Arc::new(key);
            remember(path, &key);
            return Ok(key);
        }
        let _ = console::Term::stderr().write_line("Bad passphrase, try again.");
    }
    Err(key_error(path, "wrong passphrase".into()))
}

fn prompt(path: &Path) -> Result<String, ConnectError> {
    let term = console::Term::stderr();
    term.write_str(&format!("Enter passphrase for key '{}': ", path.display()))
        .and_then(|_| term.read_secure_line())
        .map_err(|e| key_error(path, format!("cannot read the passphrase: {e}")))
}

fn cached(path: &Path) -> Option<Arc<PrivateKey>> {
    CACHE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(path)
        .cloned()
}

fn remember(path: &Path, key: &Arc<PrivateKey>) {
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    cache.insert(path.to_path_buf(), key.clone());
}

fn key_error(path: &Path, reason: String) -> ConnectError {
    ConnectError::KeyFile {
        path: path.display().to_string(),
        reason,
    }
}
