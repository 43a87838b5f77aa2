//! `provision releases <env>`: the release history recorded on each host.

use super::Target;
use super::context::Context;
use crate::error::{Error, exit};
use crate::inventory::Host;
use crate::remote::releases::{self, Record};

pub async fn run(cx: &Context, env: &str) -> Result<i32, Error> {
    let t = Target::load(cx.config.as_deref(), env, cx.limit.as_deref(), &cx.access).await?;
    let mut code = exit::OK;
    for h in &t.hosts {
        match releases::read(&h.name, &h.connect, &t.project.app, &t.env.name).await {
            Err(e) => {
                show_unreachable(cx, h, &e);
                code = exit::UNREACHABLE;
            }
            Ok(records) => show(cx, h, &records),
        }
    }
    Ok(code)
}

fn show_unreachable(cx: &Context, h: &Host, e: &str) {
    if cx.json() {
        out(&serde_json::json!({ "event": "release", "host": h.name, "unreachable": true, "error": e }).to_string());
    } else {
        out(&format!("[{}] UNREACHABLE: {e}", h.name));
    }
}

fn show(cx: &Context, h: &Host, records: &[Record]) {
    if cx.json() {
        for r in records {
            out(&serde_json::json!({ "event": "release", "host": h.name, "time": r.time, "release": r.release, "user": r.user, "result": r.result, "changed": r.changed }).to_string());
        }
    } else if !cx.quiet() {
        out(&format!("[{}] {} release(s)", h.name, records.len()));
        for r in records {
            out(&format!(
                "  {}  {:<8} {:<42} {} ({} changed)",
                r.time, r.result, r.release, r.user, r.changed
            ));
        }
    }
}

fn out(line: &str) {
    println!("{line}");
}
