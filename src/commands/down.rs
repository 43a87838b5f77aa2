//! `provision down <env>`: terminate the env's EC2 instances and delete the security group
//! and key pair provision created (asks first; `--yes` where no one can answer).

use super::context::Context;
use super::load;
use crate::error::Error;

pub async fn run(cx: &Context, env_name: &str) -> Result<i32, Error> {
    let project = load::project(cx)?;
    let env = project.env(env_name)?;
    let resolve = load::resolver(&project, cx);
    crate::cloud::down(&project, env, cx.cloud(), resolve).await
}
