//! `provision unlock <env>`: remove the deploy lock an interrupted deploy left on the hosts.
//! It asks first on a terminal; where no one can answer (no terminal on stdin, or `CI` set)
//! it needs `--yes`.

use super::context::Context;
use super::{Target, hosts_n};
use crate::config::{ConfigError, Project};
use crate::error::{Error, exit};
use crate::report::{Event, Output};
use crate::steps::shell::state_dir;
use crate::transport::Connector;
use crate::transport::Transport;
use crate::transport::ssh::SshConnector;
use std::time::Duration;

/// Prints `held <owner>` (and removes the lock when `remove`), or `free`.
pub fn script(app: &str, env: &str, remove: bool) -> String {
    let rm = if remove { "rm -rf \"$st/lock\"\n" } else { "" };
    format!(
        "{st}if [ -d \"$st/lock\" ]; then\n\
           printf 'held %s\\n' \"$(sed -n 1p \"$st/lock/info\" 2>/dev/null)\"\n\
           {rm}\
         else echo free; fi\n",
        st = state_dir(app, env)
    )
}

/// Run the script on every host: `(host, Ok(Some(owner)) | Ok(None) | Err(error))`.
async fn each(t: &Target, remove: bool) -> Vec<(String, Result<Option<String>, String>)> {
    let script = script(&t.project.app, &t.env.name, remove);
    let mut tasks = tokio::task::JoinSet::new();
    for h in t.hosts.clone() {
        let script = format!("{}{script}", t.prelude);
        tasks.spawn(async move {
            let r = async {
                let s = SshConnector
                    .connect(&h.connect)
                    .await
                    .map_err(|e| e.to_string())?;
                let out = s.exec(&script, None, Duration::from_secs(60)).await;
                s.close().await;
                let out = out.map_err(|e| e.to_string())?;
                if !out.success() {
                    return Err(crate::steps::tail(&out.stderr_lossy(), 3));
                }
                let text = out.stdout_lossy();
                Ok(text
                    .lines()
                    .find_map(|l| l.strip_prefix("held "))
                    .map(|o| if o.is_empty() { "unknown" } else { o }.to_string()))
            }
            .await;
            (h.name, r)
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.push(r.expect("unlock task panicked"));
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// `provision unlock <env>`: asks first, unless `--yes`; refused where no one can answer.
pub async fn run(cx: &Context, env: &str) -> Result<i32, Error> {
    if !cx.yes && !crate::report::interactive() {
        let file = Project::locate(cx.config.as_deref())?;
        return Err(ConfigError::new(
            file,
            "removing a deploy lock needs confirmation, and no one can answer here (no terminal on stdin, or CI is set)",
        )
        .with_help("pass --yes")
        .into());
    }
    let t = Target::load(cx, env).await?;
    let out = t.output(cx.json(), false);
    // Asked through the channel, so that a secret in a lock owner's name is masked.
    let ask = |q: &str| out.confirm(q);
    let confirm: Option<&dyn Fn(&str) -> bool> = if cx.yes { None } else { Some(&ask) };
    Ok(remove(&t, &out, confirm).await)
}

/// `confirm` is asked (with the holders) before anything is removed; `None` means `--yes`.
async fn remove(t: &Target, out: &Output, confirm: Option<&dyn Fn(&str) -> bool>) -> i32 {
    if let Some(ask) = confirm {
        let found = each(t, false).await;
        let held: Vec<String> = found
            .iter()
            .filter_map(|(h, r)| match r {
                Ok(Some(owner)) => Some(format!("  [{h}] held by {owner}")),
                _ => None,
            })
            .collect();
        if held.is_empty() {
            out.line("no deploy lock is held on these hosts");
            return report(out, found);
        }
        let question = format!(
            "{}\nRemove the deploy lock on {}? A deploy still running there would no longer be protected. [y/N] ",
            held.join("\n"),
            hosts_n(held.len())
        );
        if !ask(&question) {
            out.line("nothing removed");
            return exit::OK;
        }
    }
    let done = each(t, true).await;
    report(out, done)
}

fn report(out: &Output, results: Vec<(String, Result<Option<String>, String>)>) -> i32 {
    let mut code = exit::OK;
    for (host, r) in results {
        if r.is_err() {
            code = exit::UNREACHABLE;
        }
        match r {
            r if out.json() => out.emit(Event::unlock(&host, r)),
            Ok(Some(owner)) => {
                out.line(&format!("[{host}] removed the deploy lock held by {owner}"))
            }
            Ok(None) => out.line(&format!("[{host}] no deploy lock")),
            Err(e) => out.line(&format!("[{host}] UNREACHABLE: {e}")),
        }
    }
    code
}
