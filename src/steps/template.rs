//! `template`: render a minijinja template locally (strict undefined) and upload the result
//! like `file`. Plan mode shows a diff against what is on the host.

use super::PrepareCx;
use super::upload::Upload;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Template path, relative to the folder holding provision.toml (e.g. "templates/app.conf.j2").
    pub src: String,
    pub dest: String,
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

pub fn prepare(spec: &Spec, cx: &PrepareCx<'_>) -> Result<Upload, String> {
    let (text, read_secret) = cx
        .secrets
        .track(cx.context, |ctx| cx.templates.render_file(&spec.src, ctx));
    let text = text.map_err(|e| e.to_string())?;
    let up = Upload::new(
        &spec.dest,
        text.into_bytes(),
        spec.mode.as_deref().unwrap_or("644"),
        spec.owner.clone(),
        spec.group.clone(),
    )?;
    // A file rendered from secrets is never fetched for a diff: it may hold rotated-away
    // ones, and filters may have put them in a form the redactor does not know.
    Ok(up.hidden_if(read_secret, cx.secrets.redactor()))
}
