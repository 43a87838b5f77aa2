//! `docker_run`: a container with exactly this configuration, running.
//!
//! The container carries labels with a short hash of each configuration field, and the hash of
//! its env file's content. It is recreated exactly when one differs (the message names the
//! fields) or its image was rebuilt under the same tag; otherwise it is only started if
//! stopped. A `stateful` container (a database) is never recreated without
//! `--allow-recreate`, and named volumes are never removed.
//!
//! Recreating (`strategy = "stop-first"`, the default) keeps the old container, stopped and
//! renamed `<name>--previous`, until the new one runs (and passes `healthcheck`, when given);
//! if it does not, the old one is renamed back and started, so the previous release keeps
//! serving. The port is closed meanwhile. `strategy = "start-first"` starts the new container
//! beside the old one, behind a front proxy that publishes the port (`docker_swap.rs`).

use super::absent::AbsentContainer;
use super::docker_install::{docker_missing, docker_ok_probe};
use super::docker_swap::{Proxy, SERVICE_LABEL, Swap, valid_name};
use super::shell::HTTP_STATUS_FN;
use super::state::State;
use super::{Action, Decision, Kind, PrepareCx, PrepareError, Probe, StepKind};
use crate::transport::script::quote;
use crate::value::{Dur, OneOrMany};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: String,
    /// Required unless `state = "absent"` (checked in `prepare`, so an absent step needs none).
    #[serde(default)]
    pub image: String,
    /// Env file on the host (e.g. written by an `env_file` step); its content is part of the state.
    pub env_file: Option<String>,
    /// Plain environment values (visible in `docker inspect`; secrets belong in env_file).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `-p` values, e.g. "127.0.0.1:8080:8000".
    #[serde(default)]
    pub ports: Vec<String>,
    /// `-v` values, e.g. "pgdata:/var/lib/postgresql/data".
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Network to attach to (created when missing).
    pub network: Option<String>,
    /// Restart policy (default "unless-stopped").
    pub restart: Option<String>,
    /// Command: a string (run by /bin/sh -c in the container) or a list of arguments.
    pub command: Option<OneOrMany>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Never recreated without --allow-recreate.
    #[serde(default)]
    pub stateful: bool,
    /// "missing" (default), "never" or "always".
    pub pull: Option<String>,
    /// After (re)creating: this URL must answer `status` within `timeout`, else the previous
    /// container is restored and the step fails.
    pub healthcheck: Option<Health>,
    /// "stop-first" (default): stop the old container, then start the new one. "start-first":
    /// the new one starts beside the old one behind `proxy`, which switches once it is healthy.
    #[serde(default)]
    pub strategy: Strategy,
    /// The front proxy of a start-first container: `{ port = "127.0.0.1:8080", app_port =
    /// 8000, health = "/up", interval = "0.2s", timeout = "30s", drain = "30s" }`. Boxed: the
    /// playbook's step enum stays small.
    pub proxy: Option<Box<Proxy>>,
    /// "absent": remove the container (and its `--previous`); named volumes are kept.
    #[serde(default)]
    pub state: State,
}

/// How a container is replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Stop the old container, then start the new one (the port is closed meanwhile).
    #[default]
    StopFirst,
    /// Start the new one beside the old one, behind the proxy; switch when it is healthy.
    StartFirst,
}

impl Kind for Spec {
    const NAME: &'static str = "docker_run";

    fn target(&self) -> String {
        self.name.clone()
    }

    fn prepare(&self, cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        if self.state.is_absent() {
            let gone = AbsentContainer::new(&self.name, self.stateful, cx.allow_recreate)?;
            return Ok(Box::new(gone));
        }
        let mut d = Desired::prepare(self, cx.allow_recreate)?;
        if let Some(swap) = &mut d.swap {
            swap.load_tls(cx.secrets)?;
        }
        Ok(Box::new(d))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub url: String,
    pub status: Option<u16>,
    pub timeout: Option<Dur>,
}

#[derive(Debug, Clone)]
pub struct Desired {
    spec: Spec,
    /// field → short hash, in a stable order.
    fields: BTreeMap<&'static str, String>,
    allow_recreate: bool,
    /// Set for `strategy = "start-first"`.
    swap: Option<Swap>,
}

const FIELDS_LABEL: &str = "provision.fields";
const ENV_LABEL: &str = "provision.envsum";

fn short_hash(v: &impl Serialize) -> String {
    let json = serde_json::to_vec(v).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..6])
}

impl Desired {
    pub fn prepare(spec: &Spec, allow_recreate: bool) -> Result<Desired, String> {
        if !valid_name(&spec.name) {
            return Err(format!(
                "container name `{}` may only hold letters, digits, `_`, `.` and `-`",
                spec.name
            ));
        }
        if spec.image.is_empty() {
            return Err(format!(
                "docker_run `{}` needs `image`, or `state = \"absent\"` to remove it",
                spec.name
            ));
        }
        super::shell::not_an_option("image", &spec.image)?;
        if let Some(p) = spec
            .pull
            .as_deref()
            .filter(|p| !["missing", "never", "always"].contains(p))
        {
            return Err(format!(
                "pull `{p}` must be \"missing\", \"never\" or \"always\""
            ));
        }
        let swap = Self::swap(spec)?;
        let restart = spec
            .restart
            .clone()
            .unwrap_or_else(|| "unless-stopped".into());
        let fields = BTreeMap::from([
            ("image", short_hash(&spec.image)),
            ("env_file", short_hash(&spec.env_file)),
            ("env", short_hash(&spec.env)),
            ("ports", short_hash(&spec.ports)),
            ("volumes", short_hash(&spec.volumes)),
            ("network", short_hash(&spec.network)),
            ("restart", short_hash(&restart)),
            ("command", short_hash(&spec.command)),
            ("labels", short_hash(&spec.labels)),
        ]);
        Ok(Desired {
            spec: Spec {
                restart: Some(restart),
                ..spec.clone()
            },
            fields,
            allow_recreate,
            swap,
        })
    }

    /// The start-first swap, when `strategy` asks for it; what cannot go with it is refused.
    fn swap(spec: &Spec) -> Result<Option<Swap>, String> {
        match (spec.strategy, &spec.proxy) {
            (Strategy::StopFirst, None) => Ok(None),
            (Strategy::StopFirst, Some(_)) => Err(
                "`proxy` is only used with strategy = \"start-first\" (add it, or drop `proxy`)"
                    .into(),
            ),
            (Strategy::StartFirst, None) => Err(
                "strategy = \"start-first\" needs `proxy = { port = \"…\", app_port = …, health = \"/up\" }`: the proxy publishes the port while two containers run"
                    .into(),
            ),
            (Strategy::StartFirst, Some(proxy)) => {
                if spec.stateful {
                    return Err("a stateful container cannot be start-first: two would share its data; use the default stop-first".into());
                }
                if !spec.ports.is_empty() {
                    return Err("a start-first container publishes no `ports` (two run at once during a swap): the proxy publishes proxy.port".into());
                }
                if spec.healthcheck.is_some() {
                    return Err("a start-first container is health-checked on the docker network: use proxy.health (a path) instead of `healthcheck`".into());
                }
                Swap::prepare(&spec.name, spec.network.as_deref(), proxy).map(Some)
            }
        }
    }

    /// The label value: "command=ab12…,env=…".
    fn fields_label(&self) -> String {
        self.fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Names of the fields whose hash differs from the container's label.
    fn changed_fields(&self, label: &str) -> Vec<&'static str> {
        let current: BTreeMap<&str, &str> = label
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        self.fields
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(&v.as_str()))
            .map(|(k, _)| *k)
            .collect()
    }

    fn env_sum_sh(&self) -> String {
        match &self.spec.env_file {
            Some(f) => format!(
                "envsum=$(if [ -f {f} ]; then sha256sum < {f} | cut -c1-64; else echo missing; fi)\n",
                f = quote(f)
            ),
            None => "envsum=none\n".into(),
        }
    }

    fn run_args(&self) -> String {
        let s = &self.spec;
        let mut a = vec![format!("--name \"$n\""), "-d".into()];
        a.push(format!(
            "--label {}",
            quote(&format!("{FIELDS_LABEL}={}", self.fields_label()))
        ));
        a.push(format!("--label \"{ENV_LABEL}=$envsum\""));
        if self.swap.is_some() {
            a.push(format!(
                "--label {}",
                quote(&format!("{SERVICE_LABEL}={}", s.name))
            ));
        }
        for (k, v) in &s.labels {
            a.push(format!("--label {}", quote(&format!("{k}={v}"))));
        }
        if let Some(p) = &s.pull {
            a.push(format!("--pull {p}"));
        }
        if let Some(f) = &s.env_file {
            a.push(format!("--env-file {}", quote(f)));
        }
        for (k, v) in &s.env {
            a.push(format!("-e {}", quote(&format!("{k}={v}"))));
        }
        for p in &s.ports {
            a.push(format!("-p {}", quote(p)));
        }
        for v in &s.volumes {
            a.push(format!("-v {}", quote(v)));
        }
        if let Some(n) = &s.network {
            a.push(format!("--network {}", quote(n)));
        }
        a.push(format!(
            "--restart {}",
            quote(s.restart.as_deref().unwrap_or("unless-stopped"))
        ));
        a.push(quote(&s.image).into_owned());
        match &s.command {
            Some(OneOrMany::One(c)) => a.push(format!("/bin/sh -c {}", quote(c))),
            Some(OneOrMany::Many(v)) => a.extend(v.iter().map(|x| quote(x).into_owned())),
            None => {}
        }
        a.join(" ")
    }

    /// After `docker run`: with a health check, poll it every 0.2 s until it answers (failing
    /// at once if the container exits); without one, watch the container for a second, so one
    /// that dies at start is caught and the previous one restored. No fixed sleep either way.
    fn started_sh(&self) -> String {
        let Some(h) = &self.spec.healthcheck else {
            return format!(
                "i=0; while [ $i -lt 10 ]; do {EXITED_SH}i=$((i+1)); sleep 0.1; done\n"
            );
        };
        let timeout = h
            .timeout
            .map_or(Duration::from_secs(60), |d| d.0)
            .as_secs()
            .max(1);
        format!(
            "{HTTP_STATUS_FN}start=$(date +%s)\n\
             until code=$(http_status {url}); [ \"$code\" = {status} ]; do\n\
               {EXITED_SH}\
               if [ $(( $(date +%s) - start )) -ge {timeout} ]; then\n\
                 echo \"health check {url} answered $code, not {status}, within {timeout}s; container logs:\" >&2\n\
                 docker logs --tail 20 \"$n\" >&2 2>&1 || true\n\
                 restore; echo \"the previous container was restored\" >&2; exit 1\n\
               fi\n\
               sleep 0.2\n\
             done\n",
            status = h.status.unwrap_or(200),
            url = quote(&h.url),
        )
    }
}

/// A container that is no longer running, or was restarted (a restart policy brings a dying
/// one back, so `Running` alone can say true): say so with its logs, restore the previous one,
/// fail.
const EXITED_SH: &str = "if [ \"$(docker inspect -f '{{.State.Status}} {{.RestartCount}}' \"$n\")\" != 'running 0' ]; then echo \"container $n exited right after start; logs:\" >&2; docker logs --tail 20 \"$n\" >&2 2>&1 || true; restore; exit 1; fi\n";

impl Desired {
    /// `pull = "always"`: the tag is pulled before the image id is compared, in plan too, so
    /// a new image pushed under the same tag recreates the container (and plan says so).
    fn pull_sh(&self) -> String {
        if self.spec.pull.as_deref() != Some("always") {
            return String::new();
        }
        format!(
            "if ! pulled=$(docker pull -q {} 2>&1); then printf 'pull_error=%s\\n' \"$(printf '%s\\n' \"$pulled\" | tail -n 1)\"; fi\n",
            quote(&self.spec.image)
        )
    }
}

/// The start-first strategy: naming the new container, probing and deciding with the proxy.
impl Desired {
    /// Sets `$envsum`, `$img` and `$n`: the container this configuration, env file content and
    /// image id give, `<name>-<12 hex>`. In the apply the image is pulled first when the
    /// `pull` setting says so, since its id is part of the name.
    fn swap_name_sh(&self, apply: bool) -> String {
        let image = quote(&self.spec.image);
        let inspect =
            format!("img=$(docker image inspect -f '{{{{.Id}}}}' {image} 2>/dev/null || true)\n");
        let pull = match (apply, self.spec.pull.as_deref()) {
            (false, _) | (true, Some("never")) => String::new(),
            (true, Some("always")) => format!("docker pull -q {image} >/dev/null\n{inspect}"),
            (true, _) => {
                format!("if [ -z \"$img\" ]; then docker pull -q {image} >/dev/null; {inspect}fi\n")
            }
        };
        format!(
            "{envsum}{inspect}{pull}n={svc}-$(printf '%s|%s|%s' {want} \"$envsum\" \"$img\" | sha256sum | cut -c1-12)\n",
            envsum = self.env_sum_sh(),
            svc = quote(&self.spec.name),
            want = quote(&self.fields_label()),
        )
    }

    fn swap_probe(&self, swap: &Swap) -> String {
        format!(
            "{docker}{pull}{name}printf 'envfile=%s\\n' \"$envsum\"\nprintf 'image_id=%s\\n' \"$img\"\n{probe}",
            docker = docker_ok_probe(),
            pull = self.pull_sh(),
            name = self.swap_name_sh(false),
            probe = swap.probe(),
        )
    }

    /// What a start-first container needs: the proxy, the wanted container serving, the
    /// proxy's conf as this step writes it, and no other container of the service.
    fn swap_decide(&self, swap: &Swap, p: &Probe) -> Decision {
        let name = &self.spec.name;
        let o = Swap::observed(&p.out);
        let want = &o.want;
        let mut todo: Vec<String> = swap.proxy_problem(&o).into_iter().collect();
        let new_cert = swap
            .tls
            .as_ref()
            .is_some_and(|t| o.certsum != t.certsum || o.keysum != t.keysum);
        if todo.is_empty() && new_cert {
            todo.push(format!(
                "install the new certificate in {} and reload it",
                swap.proxy
            ));
        }
        let serving = o
            .upstream
            .as_ref()
            .and_then(|u| o.containers.iter().find(|c| c.name == *u));
        let up_to_date = serving.is_some_and(|c| c.name == *want && c.state == "running");
        match serving {
            _ if up_to_date => {}
            Some(cur) if cur.name == *want => {
                todo.push(format!("recreate {want} (was {})", cur.state));
            }
            Some(cur) => {
                let mut why: Vec<String> = self
                    .changed_fields(&cur.fields)
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                if Some(cur.envsum.as_str()) != p.field("envfile") {
                    why.push("env_file content".into());
                }
                let image_id = p.field("image_id").unwrap_or("");
                if !image_id.is_empty()
                    && cur.image != image_id
                    && !why.iter().any(|w| w == "image")
                {
                    why.push("image id".into());
                }
                todo.push(format!(
                    "swap {name}: {} changed (start {want}, switch {}, drain and stop {})",
                    why.join(", "),
                    swap.proxy,
                    cur.name
                ));
            }
            None => todo.push(format!("create {name} as {want} behind {}", swap.proxy)),
        }
        if up_to_date && todo.is_empty() && o.confsum != swap.conf_sum(want) {
            todo.push(format!("rewrite the conf of {} and reload it", swap.proxy));
        }
        let serving_name = serving.map(|c| c.name.as_str());
        let old: Vec<&str> = o
            .containers
            .iter()
            .map(|c| c.name.as_str())
            .filter(|c| c != want && Some(*c) != serving_name)
            .collect();
        if !old.is_empty() {
            todo.push(format!("remove old {}", old.join(", ")));
        }
        if o.legacy {
            todo.push(format!("replace the stop-first container {name}"));
        }
        if todo.is_empty() {
            Decision::Ok(format!("{want} serving through {}, up to date", swap.proxy))
        } else {
            Decision::change(todo.join("; "))
        }
    }
}

impl StepKind for Desired {
    fn inputs(&self) -> Vec<String> {
        self.spec.env_file.iter().cloned().collect()
    }

    fn probe(&self, _check: bool) -> Option<String> {
        if let Some(swap) = &self.swap {
            return Some(self.swap_probe(swap));
        }
        Some(format!(
            "{docker}n={n}\n{pull}{envsum}printf 'envfile=%s\\n' \"$envsum\"\n\
             printf 'image_id=%s\\n' \"$(docker image inspect -f '{{{{.Id}}}}' {image} 2>/dev/null)\"\n\
             docker inspect -f 'exists=1\nstate={{{{.State.Status}}}}\nfields={{{{index .Config.Labels \"{FIELDS_LABEL}\"}}}}\nenvsum={{{{index .Config.Labels \"{ENV_LABEL}\"}}}}\ncimage={{{{.Image}}}}' \"$n\" 2>/dev/null || true\n",
            docker = docker_ok_probe(),
            n = quote(&self.spec.name),
            pull = self.pull_sh(),
            envsum = self.env_sum_sh(),
            image = quote(&self.spec.image),
        ))
    }

    fn decide(&self, observed: Option<&Probe>) -> Decision {
        let p = observed.cloned().unwrap_or_default();
        let name = &self.spec.name;
        if let Some(d) = docker_missing(&p, format!("create {name}")) {
            return d;
        }
        if let Some(e) = p.field("pull_error") {
            return Decision::Fail(format!("cannot pull {}: {e}", self.spec.image));
        }
        if p.field("envfile") == Some("missing") {
            // In a real run the env_file step before this one writes it; in plan it may not exist yet.
            return Decision::change(format!(
                "create or recreate {name} (env file {} not there yet)",
                self.spec.env_file.as_deref().unwrap_or("")
            ));
        }
        if let Some(swap) = &self.swap {
            return self.swap_decide(swap, &p);
        }
        if p.field("exists") != Some("1") {
            return Decision::change(format!("create {name}"));
        }
        let mut why: Vec<String> = self
            .changed_fields(p.field("fields").unwrap_or(""))
            .into_iter()
            .map(str::to_string)
            .collect();
        if p.field("envsum") != p.field("envfile") {
            why.push("env_file content".into());
        }
        let image_id = p.field("image_id").unwrap_or("");
        if !image_id.is_empty()
            && p.field("cimage") != Some(image_id)
            && !why.iter().any(|w| w == "image")
        {
            why.push("image id".into());
        }
        if !why.is_empty() {
            if self.spec.stateful && !self.allow_recreate {
                return Decision::Fail(format!(
                    "stateful container {name} differs ({}); it is not recreated without --allow-recreate (its volumes are kept either way)",
                    why.join(", ")
                ));
            }
            return Decision::change(format!("recreate {name}: {} changed", why.join(", ")));
        }
        match p.field("state") {
            Some("running") => Decision::Ok(format!("{name} running, up to date")),
            other => Decision::change(format!("start {name} (was {})", other.unwrap_or("unknown"))),
        }
    }

    fn apply(&self) -> Action {
        if let Some(swap) = &self.swap {
            return Action {
                script: swap.apply(&self.swap_name_sh(true), &self.run_args()),
                stdin: swap.tls.as_ref().map(|t| t.stdin()),
                ..Action::default()
            };
        }
        let want = self.fields_label();
        let stateful_guard = if self.spec.stateful && !self.allow_recreate {
            "echo \"stateful container $n differs; not recreated without --allow-recreate\" >&2; exit 1\n"
        } else {
            ""
        };
        let network = match &self.spec.network {
            Some(net) => format!(
                "docker network inspect {q} >/dev/null 2>&1 || docker network create {q} >/dev/null\n",
                q = quote(net)
            ),
            None => String::new(),
        };
        let script = format!(
            "set -e\n\
             n={n}\n{envsum}\
             img=$(docker image inspect -f '{{{{.Id}}}}' {image} 2>/dev/null || true)\n\
             cur=none\n\
             if docker container inspect \"$n\" >/dev/null 2>&1; then cur=$(docker inspect -f '{{{{index .Config.Labels \"{FIELDS_LABEL}\"}}}}|{{{{index .Config.Labels \"{ENV_LABEL}\"}}}}|{{{{.Image}}}}' \"$n\"); fi\n\
             if [ \"$cur\" = {want_q}\"|$envsum|$img\" ] || {{ [ -z \"$img\" ] && [ \"${{cur%|*}}\" = {want_q}\"|$envsum\" ]; }}; then\n\
               docker start \"$n\" >/dev/null; exit 0\n\
             fi\n\
             prev=0\n\
             if [ \"$cur\" != none ]; then\n\
               {stateful_guard}\
               docker rm -f \"$n--previous\" >/dev/null 2>&1 || true\n\
               docker stop \"$n\" >/dev/null\n\
               docker rename \"$n\" \"$n--previous\"\n\
               prev=1\n\
             fi\n\
             restore() {{\n\
               docker rm -f \"$n\" >/dev/null 2>&1 || true\n\
               if [ \"$prev\" = 1 ]; then docker rename \"$n--previous\" \"$n\" && docker start \"$n\" >/dev/null; fi\n\
             }}\n\
             {network}\
             if ! docker run {args} >/dev/null; then restore; echo \"docker run failed; the previous container (if any) was restored\" >&2; exit 1; fi\n\
             {started}\
             docker rm -f \"$n--previous\" >/dev/null 2>&1 || true\n",
            n = quote(&self.spec.name),
            envsum = self.env_sum_sh(),
            image = quote(&self.spec.image),
            want_q = quote(&want),
            args = self.run_args(),
            started = self.started_sh(),
        );
        Action::script(script)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            name: "app".into(),
            image: "app:1".into(),
            env_file: Some("/srv/app/.env".into()),
            env: BTreeMap::new(),
            ports: vec!["127.0.0.1:8080:8000".into()],
            volumes: vec![],
            network: Some("appnet".into()),
            restart: None,
            command: None,
            labels: BTreeMap::new(),
            stateful: false,
            pull: None,
            healthcheck: None,
            strategy: Strategy::StopFirst,
            proxy: None,
            state: State::Present,
        }
    }

    fn probe_for(d: &Desired, extra: &str) -> Probe {
        Probe {
            out: format!(
                "docker=ok\nenvfile=E\nimage_id=I\nexists=1\nstate=running\nfields={}\nenvsum=E\ncimage=I\n{extra}",
                d.fields_label()
            ),
            rc: 0,
        }
    }

    #[test]
    fn up_to_date_container_is_ok() {
        let d = Desired::prepare(&spec(), false).unwrap();
        assert!(matches!(
            d.decide(Some(&probe_for(&d, ""))),
            Decision::Ok(_)
        ));
    }

    #[test]
    fn names_the_changed_field() {
        let old = Desired::prepare(&spec(), false).unwrap();
        let new = Desired::prepare(
            &Spec {
                ports: vec!["127.0.0.1:9090:8000".into()],
                ..spec()
            },
            false,
        )
        .unwrap();
        assert_eq!(
            new.decide(Some(&probe_for(&old, ""))),
            Decision::change("recreate app: ports changed")
        );
    }

    #[test]
    fn env_file_content_and_rebuilt_image_recreate() {
        let d = Desired::prepare(&spec(), false).unwrap();
        let mut p = probe_for(&d, "");
        p.out = p.out.replace("envfile=E", "envfile=F");
        assert_eq!(
            d.decide(Some(&p)),
            Decision::change("recreate app: env_file content changed")
        );
        let mut p = probe_for(&d, "");
        p.out = p.out.replace("image_id=I", "image_id=J");
        assert_eq!(
            d.decide(Some(&p)),
            Decision::change("recreate app: image id changed")
        );
    }

    #[test]
    fn stateful_is_not_recreated_without_flag() {
        let s = Spec {
            stateful: true,
            ..spec()
        };
        let old = Desired::prepare(&s, false).unwrap();
        let new = Desired::prepare(
            &Spec {
                image: "app:2".into(),
                ..s.clone()
            },
            false,
        )
        .unwrap();
        assert!(matches!(
            new.decide(Some(&probe_for(&old, ""))),
            Decision::Fail(_)
        ));
        let allowed = Desired::prepare(
            &Spec {
                image: "app:2".into(),
                ..s
            },
            true,
        )
        .unwrap();
        assert!(matches!(
            allowed.decide(Some(&probe_for(&old, ""))),
            Decision::Change { .. }
        ));
    }

    #[test]
    fn stopped_container_is_started() {
        let d = Desired::prepare(&spec(), false).unwrap();
        let mut p = probe_for(&d, "");
        p.out = p.out.replace("state=running", "state=exited");
        assert_eq!(
            d.decide(Some(&p)),
            Decision::change("start app (was exited)")
        );
    }

    #[test]
    fn run_args_are_quoted() {
        let d = Desired::prepare(
            &Spec {
                command: Some(OneOrMany::One("echo 'hi'".into())),
                ..spec()
            },
            false,
        )
        .unwrap();
        let a = d.run_args();
        assert!(a.contains("-p '127.0.0.1:8080:8000'"), "{a}");
        assert!(a.contains("--env-file /srv/app/.env"), "{a}");
        assert!(a.ends_with("'app:1' /bin/sh -c 'echo '\\''hi'\\'''"), "{a}");
        assert!(
            Desired::prepare(
                &Spec {
                    name: "bad name".into(),
                    ..spec()
                },
                false
            )
            .is_err()
        );
    }

    fn start_first() -> Spec {
        Spec {
            ports: vec![],
            strategy: Strategy::StartFirst,
            proxy: Some(Box::new(Proxy {
                port: "127.0.0.1:8080".into(),
                app_port: Some(8000),
                health: Some("/health".into()),
                interval: None,
                timeout: None,
                drain: None,
                image: None,
                name: None,
                lb: None,
                https_port: None,
                tls: None,
            })),
            ..spec()
        }
    }

    /// A probe of a start-first step whose proxy routes to `upstream`, with `containers`.
    fn swap_probe(d: &Desired, upstream: &str, containers: &[(&str, &str)]) -> Probe {
        let swap = d.swap.as_ref().unwrap();
        let mut out = format!(
            "docker=ok\nenvfile=E\nimage_id=I\nwant=app-new\nproxy=running {}\nupstream={upstream}\nconfsum={}\n",
            swap.proxy_label(),
            swap.conf_sum(upstream)
        );
        for (name, fields) in containers {
            out.push_str(&format!("c=/{name}|running|{fields}|E|I\n"));
        }
        Probe { out, rc: 0 }
    }

    #[test]
    fn start_first_is_ok_when_the_proxy_serves_the_wanted_container() {
        let d = Desired::prepare(&start_first(), false).unwrap();
        let label = d.fields_label();
        let p = swap_probe(&d, "app-new", &[("app-new", &label)]);
        assert_eq!(
            d.decide(Some(&p)),
            Decision::Ok("app-new serving through app-proxy, up to date".into())
        );
        // A conf edited by hand (or a drain changed) is rewritten and reloaded.
        let mut edited = p.clone();
        edited.out = edited.out.replace("confsum=", "confsum=x");
        assert_eq!(
            d.decide(Some(&edited)),
            Decision::change("rewrite the conf of app-proxy and reload it")
        );
    }

    #[test]
    fn start_first_swaps_and_names_what_changed() {
        let old = Desired::prepare(&start_first(), false).unwrap();
        let new = Desired::prepare(
            &Spec {
                image: "app:2".into(),
                ..start_first()
            },
            false,
        )
        .unwrap();
        let p = swap_probe(
            &new,
            "app-old",
            &[("app-old", &old.fields_label()), ("app-x", "")],
        );
        assert_eq!(
            new.decide(Some(&p)),
            Decision::change(
                "swap app: image changed (start app-new, switch app-proxy, drain and stop app-old); remove old app-x"
            )
        );
        let mut fresh = Probe::with_out(
            "docker=ok\nenvfile=E\nimage_id=I\nwant=app-new\nupstream=\nconfsum=e3\n",
        );
        assert_eq!(
            new.decide(Some(&fresh)),
            Decision::change(
                "create proxy app-proxy on port 127.0.0.1:8080; create app as app-new behind app-proxy"
            )
        );
        fresh.out.push_str("legacy=1\n");
        assert!(
            matches!(new.decide(Some(&fresh)), Decision::Change { summary, .. } if summary.ends_with("replace the stop-first container app"))
        );
    }

    #[test]
    fn start_first_refuses_what_cannot_run_twice() {
        let err = |s: Spec| Desired::prepare(&s, false).unwrap_err();
        assert!(
            err(Spec {
                ports: vec!["8080:80".into()],
                ..start_first()
            })
            .contains("no `ports`")
        );
        assert!(
            err(Spec {
                stateful: true,
                ..start_first()
            })
            .contains("stateful")
        );
        assert!(
            err(Spec {
                network: None,
                ..start_first()
            })
            .contains("network")
        );
        assert!(
            err(Spec {
                proxy: None,
                ..start_first()
            })
            .contains("needs `proxy")
        );
        assert!(
            err(Spec {
                strategy: Strategy::StopFirst,
                ..start_first()
            })
            .contains("only used with")
        );
        assert!(
            err(Spec {
                healthcheck: Some(Health {
                    url: "http://x/".into(),
                    status: None,
                    timeout: None
                }),
                ..start_first()
            })
            .contains("proxy.health")
        );
    }

    #[test]
    fn start_first_scripts_are_valid_sh_and_label_the_service() {
        let d = Desired::prepare(&start_first(), false).unwrap();
        assert!(
            d.run_args().contains("--label provision.service=app "),
            "{}",
            d.run_args()
        );
        assert!(!d.run_args().contains(" -p "), "{}", d.run_args());
        for script in [d.probe(false).unwrap(), d.apply().script] {
            let out = std::process::Command::new("sh")
                .args(["-n", "-c", &script])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}\n{script}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn strategy_is_one_of_two_names() {
        let parse = |t: &str| toml::from_str::<Spec>(&format!("name = \"a\"\nimage = \"b\"\n{t}"));
        assert_eq!(parse("").unwrap().strategy, Strategy::StopFirst);
        assert_eq!(
            parse("strategy = \"start-first\"").unwrap().strategy,
            Strategy::StartFirst
        );
        let e = parse("strategy = \"blue-green\"").unwrap_err().to_string();
        assert!(
            e.contains("`stop-first`, `start-first`") || e.contains("stop-first"),
            "{e}"
        );
    }
}
