//! `file`: upload a local file (path relative to the project) to the host, or with
//! `state = "absent"` remove the file at `dest`.

use super::absent::{AbsentPath, PathType};
use super::state::State;
use super::upload::Upload;
use super::{Action, Decision, Kind, PrepareCx, PrepareError, Probe, StepKind};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Local path, relative to the folder holding provision.toml. Required unless absent.
    pub src: Option<String>,
    pub dest: String,
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    #[serde(default)]
    pub state: State,
}

impl Kind for Spec {
    const NAME: &'static str = "file";

    fn target(&self) -> String {
        self.dest.clone()
    }

    fn prepare(&self, cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        if self.state.is_absent() {
            return Ok(Box::new(AbsentPath::new(&self.dest, PathType::File)?));
        }
        Ok(Box::new(prepare(self, cx)?))
    }
}

pub fn prepare(spec: &Spec, cx: &PrepareCx<'_>) -> Result<Upload, PrepareError> {
    let Some(src) = &spec.src else {
        return Err(PrepareError::Invalid(format!(
            "file `{}` needs `src` (the local file to upload), or `state = \"absent\"`",
            spec.dest
        )));
    };
    let path = cx.root.join(src);
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
    /// The stat and sha256 of `dest`; written through a stage beside it (`mkdir -p` of its
    /// directory).
    fn footprint(&self) -> Option<Vec<String>> {
        Some(vec![self.dest.clone()])
    }
    fn apply(&self) -> Action {
        Upload::apply(self)
    }
}
