//! `env_file`: write the environment's secrets (and plain extra values) as a dotenv file,
//! mode 0600 by default, atomically. The content travels on stdin like every upload, so no
//! value is ever on a command line; plan mode names changed keys but never shows values.
//!
//! The format is one `KEY=value` per line with the value unquoted, which is what both
//! `docker run --env-file` and dotenv readers accept.

use super::upload::Upload;
use super::{Kind, PrepareCx, PrepareError, StepKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub dest: String,
    /// Secret keys to write. Default: every key of the env's secrets file. Each must be set
    /// and non-empty (in the secrets file, or in provision's own environment).
    pub keys: Option<Vec<String>>,
    /// Extra non-secret values (rendered like any step field).
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

impl Kind for Spec {
    const NAME: &'static str = "env_file";

    fn target(&self) -> String {
        self.dest.clone()
    }

    /// The extra values are part of the file, which travels on stdin like every upload.
    fn on_stdin(&self, field: &str) -> bool {
        field.starts_with("vars.")
    }

    fn prepare(&self, cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        Ok(Box::new(prepare(self, cx)?))
    }
}

pub fn prepare(spec: &Spec, cx: &PrepareCx<'_>) -> Result<Upload, PrepareError> {
    let keys = match &spec.keys {
        Some(k) => k.clone(),
        None => cx.secrets.file_keys(),
    };
    let mut lines = BTreeMap::new();
    for (k, v) in &spec.vars {
        lines.insert(k.clone(), v.clone());
    }
    for key in &keys {
        let value = cx.secrets.require(key).map_err(PrepareError::Secret)?;
        lines.insert(key.clone(), value);
    }
    if lines.is_empty() {
        let why = match cx.secrets.missing_file() {
            Some(f) => format!("the secrets file {} does not exist", f.display()),
            None => "the secrets file has no keys".into(),
        };
        return Err(PrepareError::Invalid(format!(
            "nothing to write: {why} and no `keys`/`vars` are given"
        )));
    }
    let mut content = String::new();
    for (k, v) in &lines {
        check_key(k)?;
        if v.contains('\n') || v.contains('\r') {
            return Err(PrepareError::Invalid(format!(
                "the value of {k} spans several lines, which env files cannot hold"
            )));
        }
        content.push_str(&format!("{k}={v}\n"));
    }
    let up = Upload::new(
        &spec.dest,
        content.into_bytes(),
        spec.mode.as_deref().unwrap_or("600"),
        spec.owner.clone(),
        spec.group.clone(),
    )?;
    Ok(up.keys_only(cx.secrets.redactor()).shared_in(cx.shared))
}

fn check_key(k: &str) -> Result<(), String> {
    let ok = !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{k}` is not a valid variable name (letters, digits, `_`)"
        ))
    }
}
