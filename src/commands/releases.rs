//! `provision releases <env>`: the release history recorded on each host, through the env's
//! channel (a record may hold a secret value: a release named after one, say).

use super::Target;
use super::context::Context;
use crate::error::{Error, exit};
use crate::inventory::Host;
use crate::remote::releases::{self, Record};
use crate::report::{Event, Output};

pub async fn run(cx: &Context, env: &str) -> Result<i32, Error> {
    let t = Target::load(cx, env).await?;
    let out = t.output(cx.json(), cx.quiet());
    let mut code = exit::OK;
    for h in &t.hosts {
        match releases::read(&h.name, &h.connect, &t.project.app, &t.env.name).await {
            Err(e) => {
                show_unreachable(&out, h, e);
                code = exit::UNREACHABLE;
            }
            Ok(records) => show(&out, h, records),
        }
    }
    Ok(code)
}

fn show_unreachable(out: &Output, h: &Host, e: String) {
    if out.json() {
        out.emit(Event::release(&h.name, Err(e)));
    } else {
        out.line(&format!("[{}] UNREACHABLE: {e}", h.name));
    }
}

fn show(out: &Output, h: &Host, records: Vec<Record>) {
    if out.json() {
        for r in records {
            out.emit(Event::release(&h.name, Ok(r)));
        }
    } else if !out.quiet() {
        out.line(&format!("[{}] {} release(s)", h.name, records.len()));
        for r in &records {
            out.line(&format!(
                "  {}  {:<8} {:<42} {} ({} changed)",
                r.time, r.result, r.release, r.user, r.changed
            ));
        }
    }
}
