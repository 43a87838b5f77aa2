//! Loading private key files, with passphrases from the environment or the terminal.
//!
//! Decrypted keys are cached per path for the whole process: a run connects to many hosts
//! with the same key, and neither the prompt nor the (deliberately slow) bcrypt KDF should be
//! repeated per host.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use russh::keys::ssh_encoding::base64::{Base64, Encoding};
use russh::keys::{PrivateKey, decode_secret_key, load_secret_key};

use crate::transport::{ConnectError, InlineKey};

/// Passphrase for encrypted keys when no terminal is available (CI).
pub const PASSPHRASE_ENV: &str = "PROVISION_SSH_KEY_PASSPHRASE";

static CACHE: LazyLock<Mutex<HashMap<PathBuf, Arc<PrivateKey>>>> = LazyLock::new(Default::default);

/// Parallel connects must not prompt on the terminal at the same time.
static PROMPT_LOCK: Mutex<()> = Mutex::new(());

/// Keys whose passphrase the person failed to give (three wrong answers, or the terminal
/// could not be read), with the reason: every other host of the run gets the same answer at
/// once instead of three more prompts each.
static GAVE_UP: LazyLock<Mutex<HashMap<PathBuf, String>>> = LazyLock::new(Default::default);

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
    if !allow_prompt || !std::io::stdin().is_terminal() || std::env::var_os("CI").is_some() {
        return Err(key_error(
            path,
            format!(
                "the key is encrypted and no passphrase can be asked for here (no terminal on stdin, or CI is set); set {PASSPHRASE_ENV} or add the key to ssh-agent (ssh-add)"
            ),
        ));
    }
    let _guard = PROMPT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    // Another connection may have asked for this very key while we waited for the lock.
    if let Some(key) = cached(path) {
        return Ok(key);
    }
    let mut gave_up = GAVE_UP.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(reason) = gave_up.get(path) {
        return Err(key_error(path, reason.clone()));
    }
    let reason = match ask_three_times(path) {
        Ok(key) => return Ok(key),
        Err(reason) => reason,
    };
    gave_up.insert(path.to_path_buf(), reason.clone());
    Err(key_error(path, reason))
}

/// Prompt up to three times; the decrypted key (remembered for the run), or why not.
fn ask_three_times(path: &Path) -> Result<Arc<PrivateKey>, String> {
    for _ in 0..3 {
        let pass = prompt(path)?;
        if let Ok(key) = load_secret_key(path, Some(&pass)) {
            let key = Arc::new(key);
            remember(path, &key);
            return Ok(key);
        }
        let _ = console::Term::stderr().write_line("Bad passphrase, try again.");
    }
    Err("wrong passphrase (asked three times)".into())
}

/// Decoded inline keys by source (`$PROVISION_SSH_KEY`, `stdin`).
static INLINE_CACHE: LazyLock<Mutex<HashMap<String, Arc<PrivateKey>>>> =
    LazyLock::new(Default::default);

/// The key text as CI systems tend to deliver it, made decodable: CRLF line ends, literal
/// `\n` escapes in a one-line value, surrounding blanks, a missing final newline, or the
/// whole key base64-encoded (for CI variables that cannot hold newlines).
pub(super) fn normalize_key_text(raw: &str) -> Result<String, String> {
    let mut text = raw.replace("\r\n", "\n").replace('\r', "\n");
    if !text.trim().contains('\n') && text.contains("\\n") {
        text = text.replace("\\n", "\n");
    }
    let mut text = text.trim().to_string();
    if text.is_empty() {
        return Err("it is empty".into());
    }
    if !text.contains("-----BEGIN ") {
        let compact: String = text.split_whitespace().collect();
        let decoded = Base64::decode_vec(&compact)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|t| t.contains("-----BEGIN "));
        match decoded {
            Some(t) => return normalize_key_text(&t),
            None => {
                return Err(
                    "it holds no private key (expected the text of an OpenSSH or PEM private key, `-----BEGIN ...`, or that text base64-encoded)".into(),
                );
            }
        }
    }
    text.push('\n');
    Ok(text)
}

/// Checked before any connection: the file at `path` is a private key, and when it is
/// encrypted and [`PASSPHRASE_ENV`] is set, that passphrase decrypts it (an encrypted key without
/// it passes here: it may be prompted for, or fail, at connect time). The decoded key is cached
/// for the connections. The error is the reason alone; the caller names the file.
pub fn check_key_file(path: &Path) -> Result<(), String> {
    if cached(path).is_some() {
        return Ok(());
    }
    if path.is_dir() {
        return Err("it is a directory, not a private key file".into());
    }
    let key = match load_secret_key(path, None) {
        Ok(key) => key,
        Err(russh::keys::Error::KeyIsEncrypted) => match std::env::var(PASSPHRASE_ENV) {
            Ok(pass) => load_secret_key(path, Some(&pass)).map_err(|_| {
                format!(
                    "it is encrypted and the passphrase in {PASSPHRASE_ENV} does not decrypt it"
                )
            })?,
            Err(_) => return Ok(()),
        },
        Err(russh::keys::Error::IO(e)) => return Err(format!("cannot be read: {e}")),
        Err(e) => {
            return Err(format!(
                "is not a usable private key ({e}); expected an OpenSSH or PEM private key"
            ));
        }
    };
    remember(path, &Arc::new(key));
    Ok(())
}

/// Checked before any connection: the text decodes as a private key (an encrypted one passes
/// here; its passphrase is needed at connect time).
pub fn check_inline_key(raw: &str) -> Result<(), String> {
    let text = normalize_key_text(raw)?;
    match decode_secret_key(&text, None) {
        Ok(_) | Err(russh::keys::Error::KeyIsEncrypted) => Ok(()),
        Err(e) => Err(format!("it is not a usable private key ({e})")),
    }
}

/// Decode a key given as text. Never prompts: an encrypted key needs
/// [`PASSPHRASE_ENV`].
pub(super) async fn load_inline(key: &InlineKey) -> Result<Arc<PrivateKey>, ConnectError> {
    let key = key.clone();
    let source = key.source.clone();
    tokio::task::spawn_blocking(move || load_inline_blocking(&key))
        .await
        .unwrap_or_else(|e| {
            Err(ConnectError::KeyFile {
                path: source,
                reason: format!("loading failed: {e}"),
            })
        })
}

fn load_inline_blocking(key: &InlineKey) -> Result<Arc<PrivateKey>, ConnectError> {
    let err = |reason: String| ConnectError::KeyFile {
        path: key.source.clone(),
        reason,
    };
    let mut cache = INLINE_CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(k) = cache.get(&key.source) {
        return Ok(k.clone());
    }
    let text = normalize_key_text(&key.text).map_err(err)?;
    let decoded = match decode_secret_key(&text, None) {
        Ok(k) => k,
        Err(russh::keys::Error::KeyIsEncrypted) => match std::env::var(PASSPHRASE_ENV) {
            Ok(pass) => decode_secret_key(&text, Some(&pass)).map_err(|_| {
                err(format!(
                    "the passphrase in {PASSPHRASE_ENV} does not decrypt it"
                ))
            })?,
            Err(_) => {
                return Err(err(format!(
                    "the key is encrypted; set {PASSPHRASE_ENV} to its passphrase (a key given as text is never prompted for)"
                )));
            }
        },
        Err(e) => return Err(err(format!("not a usable private key ({e})"))),
    };
    let decoded = Arc::new(decoded);
    cache.insert(key.source.clone(), decoded.clone());
    Ok(decoded)
}

fn prompt(path: &Path) -> Result<String, String> {
    let term = console::Term::stderr();
    term.write_str(&format!("Enter passphrase for key '{}': ", path.display()))
        .and_then(|_| term.read_secure_line())
        .map_err(|e| format!("cannot read the passphrase: {e}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    // Not a key: only the shape matters here (nothing is decoded).
    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5LCBqdXN0IGEgc2hhcGUgZm9yIHRoZSB0ZXN0\nYW5vdGhlciBsaW5lIG9mIGZpbGxlcg==\n-----END OPENSSH PRIVATE KEY-----\n";

    #[test]
    fn key_text_survives_what_ci_does_to_it() {
        let want = normalize_key_text(KEY).unwrap();
        assert!(want.ends_with("-----END OPENSSH PRIVATE KEY-----\n"));
        // CRLF, no final newline, surrounding blanks.
        let crlf = format!("  {}  ", KEY.trim_end().replace('\n', "\r\n"));
        assert_eq!(normalize_key_text(&crlf).unwrap(), want);
        // One line with literal \n escapes.
        assert_eq!(normalize_key_text(&KEY.replace('\n', "\\n")).unwrap(), want);
        // The whole key base64-encoded, wrapped.
        let b64 = Base64::encode_string(KEY.as_bytes());
        let wrapped: Vec<String> = b64
            .as_bytes()
            .chunks(60)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        assert_eq!(normalize_key_text(&wrapped.join("\n")).unwrap(), want);
        assert!(normalize_key_text("").unwrap_err().contains("empty"));
        assert!(
            normalize_key_text("ssh-ed25519 AAAA")
                .unwrap_err()
                .contains("no private key")
        );
    }
}
