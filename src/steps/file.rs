//! `file`: upload a local file (path relative to the project) to the host.

use super::upload::Upload;
use super::{Action, Decision, Kind, PrepareCx, PrepareError, Probe, StepKind};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Local path, relative to the folder holding provision.toml.
    pub src: String,
    pub dest: String,
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

impl Kind for Spec {
    const NAME: &'static str = "file";

    fn target(&self) -> String {
        self.dest.clone()
    }

    fn prepare(&self, cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        Ok(Box::new(prepare(self, cx)?))
    }
}

pub fn prepare(spec: &Spec, cx: &PrepareCx<'_>) -> Result<Upload, PrepareError> {
    let path = cx.root.join(&spec.src);
    let content = std::fs::read(&path).map_err(|source| PrepareError::Read { path, source })?;
    let up = Upload::new(
        &spec.dest,
        content,
        spec.mode.as_deref().unwrap_or("644"),
        spec.owner.clone(),
        spec.group.clone(),
    )?;
    // A file with secret values is never fetched for a diff: it may hold rotated-away ones.
    Ok(up
        .hidden_if_secret(cx.secrets.redactor())
        .shared_in(cx.shared))
}

impl StepKind for Upload {
    fn probe(&self, check: bool) -> Option<String> {
        Some(Upload::probe(self, check))
    }
    fn decide(&self, observed: Option<&Probe>) -> Decision {
        Upload::decide(self, observed)
    }
    fn outputs(&self) -> Vec<String> {
        vec![self.dest.clone()]
    }
    fn apply(&self) -> Action {
        Upload::apply(self)
    }
}
