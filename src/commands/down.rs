//! `provision down <env>`: terminate the env's EC2 instances and delete the security group
//! and key pair provision created (asks first; `--yes` where no one can answer).

use super::context::Context;
use super::load;
use crate::error::Error;

pub async fn run(cx: &Context, env_name: &str) -> Result<i32, Error> {
    let project = load::project(cx)?;
    let env = project.env(env_name)?;
    // Registered so that a secret value in what EC2 reports (a tag, an address) is masked.
    load::secrets(env, &cx.redactor)?;
    let resolve = load::resolver(&project, cx);
    let out = cx.out();
    crate::cloud::down(&project, env, cx.cloud(&out), resolve).await
}
