//! `template`: render a minijinja template locally (strict undefined) and upload the result
//! like `file`. Plan mode shows a diff against what is on the host.

use super::upload::Upload;
use super::{Kind, PrepareCx, PrepareError, StepKind};
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

impl Kind for Spec {
    const NAME: &'static str = "template";

    fn target(&self) -> String {
        self.dest.clone()
    }

    fn template_file(&self) -> Option<&str> {
        Some(&self.src)
    }

    fn prepare(&self, cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        Ok(Box::new(prepare(self, cx)?))
    }
}

pub fn prepare(spec: &Spec, cx: &PrepareCx<'_>) -> Result<Upload, PrepareError> {
    let (text, read_secret) = cx
        .secrets
        .track(cx.context, |ctx| cx.templates.render_file(&spec.src, ctx));
    let text = text?;
    let up = Upload::new(
        &spec.dest,
        text.into_bytes(),
        spec.mode.as_deref().unwrap_or("644"),
        spec.owner.clone(),
        spec.group.clone(),
    )?;
    // A file rendered from secrets is never fetched for a diff: it may hold rotated-away
    // ones, and filters may have put them in a form the redactor does not know.
    Ok(up
        .hidden_if(read_secret, cx.secrets.redactor())
        .shared_in(cx.shared))
}
