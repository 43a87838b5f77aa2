//! What a step kind's file provides: its playbook form (`Spec`) implements [`Kind`], which says
//! the kind's name, the field its default step name comes from, and how it is prepared for one
//! host from a [`PrepareCx`]. The list in `registry.rs` turns these into the playbook's `Spec`.

use super::StepKind;
use crate::secrets::Secrets;
use crate::template::{TemplateError, Templates};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A step kind, implemented by the `Spec` of each `steps/<kind>.rs`.
///
/// `Serialize` and `DeserializeOwned` because the planner renders a spec's string fields by
/// round-tripping it through JSON.
pub trait Kind: Serialize + DeserializeOwned {
    /// The kind's name: its key in a `[[step]]`, its `kind` in events and the first word of
    /// its default step name.
    const NAME: &'static str;

    /// The main field, for the default step name (`"<NAME> <target>"`, e.g. `directory /srv`).
    /// Empty when the kind has none.
    fn target(&self) -> String;

    /// The template file this step reads, whose variables count as the step's references.
    fn template_file(&self) -> Option<&str> {
        None
    }

    /// Whether the rendered value at `field` (a path inside the kind's table, e.g.
    /// `vars.TOKEN`) travels on stdin, and so may hold a secret. Every other field ends up in a
    /// script, which is visible in the host's process list.
    fn on_stdin(&self, _field: &str) -> bool {
        false
    }

    /// The desired state on one host, from the rendered spec.
    fn prepare(&self, cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError>;
}

/// What `prepare` may read locally: project files, templates, secrets, the host's context.
pub struct PrepareCx<'a> {
    pub app: &'a str,
    pub env: &'a str,
    /// `--allow-recreate`: stateful containers may be recreated.
    pub allow_recreate: bool,
    pub root: &'a Path,
    pub templates: &'a Templates,
    pub context: &'a minijinja::Value,
    pub secrets: &'a Secrets,
    /// What the hosts of this run share (see [`Shared`]).
    pub shared: &'a Shared,
}

/// Values every host of one run shares, each made once: the steps of all hosts that ask for
/// the same key get the same `Arc<T>` (e.g. the image the controller builds once for every
/// host). Owned by the planner, so it lives as long as the run and is dropped with it.
#[derive(Default)]
pub struct Shared(Mutex<HashMap<(TypeId, String), Arc<dyn Any + Send + Sync>>>);

impl Shared {
    /// The value under `key`, made with `T::default()` by the first to ask.
    pub fn get<T: Any + Send + Sync + Default>(&self, key: &str) -> Arc<T> {
        // A panic elsewhere while the lock was held cannot leave the map half-changed.
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map
            .entry((TypeId::of::<T>(), key.to_string()))
            .or_insert_with(|| Arc::new(T::default()));
        match entry.clone().downcast::<T>() {
            Ok(value) => value,
            // The key includes the type, so this cannot happen; a fresh value is still right.
            Err(_) => Arc::new(T::default()),
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

impl PrepareCx<'_> {
    /// The user provision logs in as on this host (`host.user` in the context).
    pub fn login_user(&self) -> Option<String> {
        let user = self.context.get_attr("host").ok()?.get_attr("user").ok()?;
        user.as_str().map(str::to_string)
    }
}

/// Why a step cannot be prepared: a value the playbook wrote, or a local input it names.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// A field's value is unusable (a relative path, a bad mode, an empty list).
    #[error("{0}")]
    Invalid(String),
    /// A project file the step uploads cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The step's template does not render.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A secret the step writes is not set.
    #[error("{0}")]
    Secret(String),
}

/// A kind's own checks say what is wrong with a value as a plain message.
impl From<String> for PrepareError {
    fn from(message: String) -> Self {
        PrepareError::Invalid(message)
    }
}
