//! `healthcheck`: after the app starts, an HTTP URL must answer the expected status within a
//! timeout, or the step (and the host's run) fails. Use `docker_run`'s own `healthcheck` to
//! also restore the previous container when the new one is unhealthy.

use super::{Kind, PrepareCx, PrepareError, StepKind, wait};
use crate::value::Dur;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub url: String,
    pub status: Option<u16>,
    pub timeout: Option<Dur>,
    pub interval: Option<Dur>,
}

impl Kind for Spec {
    const NAME: &'static str = "healthcheck";

    fn target(&self) -> String {
        self.url.clone()
    }

    fn prepare(&self, _cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        Ok(Box::new(prepare(self)?))
    }
}

pub fn prepare(spec: &Spec) -> Result<wait::Desired, String> {
    if !spec.url.starts_with("http://") && !spec.url.starts_with("https://") {
        return Err(format!(
            "url `{}` must start with http:// or https://",
            spec.url
        ));
    }
    Ok(wait::Desired::http(
        &spec.url,
        spec.status.unwrap_or(200),
        spec.timeout.map_or(wait::DEFAULT_TIMEOUT, |d| d.0),
        spec.interval.map_or(Duration::from_secs(1), |d| d.0),
    ))
}
