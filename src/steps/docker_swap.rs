//! The start-first swap of `docker_run` (`strategy = "start-first"`): a front proxy (nginx in a
//! container, publishing the host port) and app containers with no host port beside it on a
//! docker network, so a new release starts while the old one serves.
//!
//! Each app container is named `<name>-<12 hex>`, a hash of its field labels, env file content
//! and image id, and labelled `provision.service=<name>`. The proxy's nginx.conf names the one
//! container it routes to (`# provision upstream: <container>`). A swap: start the new
//! container, poll its health path at its address on the network (bounded), write nginx.conf
//! for it and `nginx -s reload` (graceful: the old workers finish their requests), wait until
//! the old workers have exited (bounded by `drain`), then stop and remove the old container. A
//! failed health check removes the new container and leaves the proxy untouched.
//!
//! A new proxy gets its conf with `docker cp` (a tar stream) before it starts; a running one in
//! one `docker exec … sh -c` (write a copy, `nginx -t` it, move it in place, reload). The probe
//! reads it with `docker cp`, and the decision compares its sha256 with the conf this step would
//! write for the container it names.

use super::docker_tls::{Tls, TlsSpec};
use super::lb_drain::{LbDrain, LbSpec, Ready};
use super::shell::{HTTP_STATUS_FN, not_an_option};
use crate::transport::script::quote;
use crate::value::Dur;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The image the proxy runs unless `proxy.image` says otherwise: Debian's nginx in a locally
/// built image (`examples/compose-three-tier/nginx-image.sh`), since no registry is assumed.
pub const DEFAULT_IMAGE: &str = "provision-local/nginx:1";
/// The label naming the service an app container belongs to.
pub const SERVICE_LABEL: &str = "provision.service";
const PROXY_LABEL: &str = "provision.proxy";
const CONF: &str = "/etc/nginx/nginx.conf";
/// Stands for the upstream container's name in the conf, until the script knows it.
const UPSTREAM: &str = "__UPSTREAM__";

/// The command (quoted, for `docker exec -i "$p" sh -c`) that puts the conf on its stdin in
/// place: a copy is written and tested with `nginx -t`, moved in, then `before_reload` (shell
/// ending in `&& ` or empty) runs and nginx reloads gracefully.
fn swap_in_sh(before_reload: &str) -> String {
    quote(&format!(
        "cat > {CONF}.new && nginx -q -t -c {CONF}.new && mv {CONF}.new {CONF} && {before_reload}nginx -s reload"
    ))
    .into_owned()
}

/// A docker container name: letters, digits, `_`, `.`, `-`, starting with a letter or digit.
pub fn valid_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// `proxy = { … }` of a start-first `docker_run`, as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proxy {
    /// Host side of the proxy's published port: "8080" or "127.0.0.1:8080".
    pub port: String,
    /// The port the app listens on inside its container (default 80).
    pub app_port: Option<u16>,
    /// Path that must answer 2xx on the new container before traffic moves (default "/up").
    pub health: Option<String>,
    /// Between health polls (default 0.2s).
    pub interval: Option<Dur>,
    /// How long the new container has to become healthy (default 30s).
    pub timeout: Option<Dur>,
    /// Longest wait for the old container's in-flight requests after the switch (default 30s).
    pub drain: Option<Dur>,
    /// The proxy's image (default provision-local/nginx:1): nginx and a `sh` on its PATH.
    pub image: Option<String>,
    /// The proxy container's name (default `<name>-proxy`).
    pub name: Option<String>,
    /// A load balancer checks this proxy: take the host out of it for the swap (lb_drain.rs).
    pub lb: Option<LbSpec>,
    /// Host side of the proxy's HTTPS port ("8443", "127.0.0.1:8443"); needs `tls`.
    pub https_port: Option<String>,
    /// Serve HTTPS on `https_port` with this certificate (tls.rs).
    pub tls: Option<TlsSpec>,
}

/// The prepared swap: every default filled in.
#[derive(Debug, Clone)]
pub struct Swap {
    pub service: String,
    pub proxy: String,
    image: String,
    port: String,
    network: String,
    app_port: u16,
    health: String,
    interval: Duration,
    timeout: Duration,
    drain: Duration,
    lb: Option<LbDrain>,
    /// HTTPS on the proxy, when `tls` is set.
    pub tls: Option<Tls>,
}

/// What the probe saw of the proxy and the service's containers.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// None: no proxy container. Some((state, label)).
    pub proxy: Option<(String, String)>,
    /// The container the proxy's conf names, and the conf's sha256.
    pub upstream: Option<String>,
    pub confsum: String,
    /// The name the desired container has (from its fields, env file and image id).
    pub want: String,
    /// The service's containers: name, state, fields label, envsum label, image id.
    pub containers: Vec<Container>,
    /// A container named exactly `<name>`: one a stop-first run left (it may hold the port).
    pub legacy: bool,
    /// sha256 of the proxy's certificate and key files (empty when absent).
    pub certsum: String,
    pub keysum: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub name: String,
    pub state: String,
    pub fields: String,
    pub envsum: String,
    pub image: String,
}

impl Swap {
    /// `network` is the docker_run's own (required: the proxy reaches the app on it).
    pub fn prepare(service: &str, network: Option<&str>, p: &Proxy) -> Result<Swap, String> {
        let Some(network) = network else {
            return Err(
                "strategy = \"start-first\" needs `network`: the proxy reaches the app on it"
                    .into(),
            );
        };
        super::check_port("proxy.port", &p.port)?;
        let tls = Tls::prepare(p.tls.as_ref(), p.https_port.as_deref())?;
        let health = p.health.clone().unwrap_or_else(|| "/up".into());
        if !health.starts_with('/') || health.contains(char::is_whitespace) {
            return Err(format!(
                "proxy.health `{health}` must be a path starting with `/`, e.g. \"/up\""
            ));
        }
        let image = p.image.clone().unwrap_or_else(|| DEFAULT_IMAGE.into());
        not_an_option("proxy.image", &image)?;
        let proxy = p.name.clone().unwrap_or_else(|| format!("{service}-proxy"));
        if !valid_name(&proxy) || proxy == service {
            return Err(format!(
                "proxy.name `{proxy}` must be a container name other than `{service}` (letters, digits, `_`, `.`, `-`)"
            ));
        }
        let dur =
            |d: Option<Dur>, default: f64| d.map_or(Duration::from_secs_f64(default), |d| d.0);
        Ok(Swap {
            service: service.into(),
            proxy,
            image,
            port: p.port.clone(),
            network: network.into(),
            app_port: p.app_port.unwrap_or(80),
            health,
            interval: dur(p.interval, 0.2).max(Duration::from_millis(50)),
            timeout: dur(p.timeout, 30.0).max(Duration::from_secs(1)),
            drain: dur(p.drain, 30.0),
            lb: p.lb.as_ref().map(LbDrain::prepare).transpose()?,
            tls,
        })
    }

    /// Read the certificate and key from the secrets (the key's sha256 is masked like them).
    pub fn load_tls(
        &mut self,
        secrets: &crate::secrets::Secrets,
    ) -> Result<(), super::PrepareError> {
        match &mut self.tls {
            Some(t) => t.load(secrets),
            None => Ok(()),
        }
    }

    /// The proxy container's label: what it is recreated for (image, published port, network).
    /// The conf is not in it: a conf change is a graceful reload, never a new container.
    pub fn proxy_label(&self) -> String {
        // Without TLS the label is what it was before TLS existed: no proxy is recreated.
        let json = match &self.tls {
            None => serde_json::to_vec(&(&self.image, &self.port, &self.network)),
            Some(t) => serde_json::to_vec(&(&self.image, &self.port, &self.network, &t.https_port)),
        }
        .unwrap_or_default();
        hex::encode(&Sha256::digest(&json)[..6])
    }

    /// The nginx.conf routing to `upstream` (a container name), as it is between deploys.
    pub fn nginx_conf(&self, upstream: &str) -> String {
        self.nginx_conf_for(upstream, Ready::Steady)
    }

    /// The nginx.conf routing to `upstream` with the LB's readiness path (if any) answering as
    /// `ready` says. `worker_shutdown_timeout` bounds how long old workers may keep serving
    /// after a reload: the drain.
    fn nginx_conf_for(&self, upstream: &str, ready: Ready) -> String {
        let (log_format, location) = match &self.lb {
            Some(lb) => (LbDrain::LOG_FORMAT, lb.location(ready)),
            None => ("", String::new()),
        };
        let app = "\x20   location / {\n\
             \x20     proxy_pass http://app;\n\
             \x20     proxy_set_header Host $http_host;\n\
             \x20     proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
             \x20     proxy_set_header X-Forwarded-Proto $scheme;\n\
             \x20   }\n";
        let (http_root, https) = match &self.tls {
            Some(t) => (t.http_location(app), t.server(app)),
            None => (app.to_string(), String::new()),
        };
        format!(
            "# Written by provision: the front proxy of docker_run `{svc}` (strategy = \"start-first\").\n\
             # provision upstream: {upstream}\n\
             worker_processes 1;\n\
             worker_shutdown_timeout {drain}ms;\n\
             pid /run/nginx.pid;\n\
             error_log stderr warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
             \x20 access_log off;\n\
             \x20 upstream app {{ server {upstream}:{port}; }}\n\
             {log_format}\
             \x20 server {{\n\
             \x20   listen 80;\n\
             {location}\
             {http_root}\
             \x20 }}\n\
             {https}\
             }}\n",
            svc = self.service,
            drain = self.drain.as_millis().max(1),
            port = self.app_port,
        )
    }

    /// sha256 of the conf for `upstream`, as the probe prints it.
    pub fn conf_sum(&self, upstream: &str) -> String {
        hex::encode(Sha256::digest(self.nginx_conf(upstream).as_bytes()))
    }

    /// Probe lines after the caller has set `$n` to the desired container's name: the proxy,
    /// its conf's upstream and sum, the service's containers, a legacy container.
    pub fn probe(&self) -> String {
        format!(
            "p={p}\nprintf 'want=%s\\n' \"$n\"\n\
             docker inspect -f 'proxy={{{{.State.Status}}}} {{{{index .Config.Labels \"{PROXY_LABEL}\"}}}}' \"$p\" 2>/dev/null || true\n\
             {{ docker cp \"$p:{CONF}\" - 2>/dev/null | tar -xOf - 2>/dev/null; echo .; }} | {{ c=$(cat); c=${{c%.}}; \
             printf 'upstream=%s\\n' \"$(printf '%s' \"$c\" | sed -n 's/^# provision upstream: //p' | head -n 1)\"; \
             printf 'confsum=%s\\n' \"$(printf '%s' \"$c\" | sha256sum | cut -c1-64)\"; }}\n\
             for c in $(docker ps -aq --filter label={SERVICE_LABEL}={svc}); do \
             docker inspect -f 'c={{{{.Name}}}}|{{{{.State.Status}}}}|{{{{index .Config.Labels \"provision.fields\"}}}}|{{{{index .Config.Labels \"provision.envsum\"}}}}|{{{{.Image}}}}' \"$c\"; done\n\
             if docker container inspect {svc} >/dev/null 2>&1; then echo legacy=1; fi\n\
             {tls}",
            tls = if self.tls.is_some() { Tls::probe() } else { "" },
            p = quote(&self.proxy),
            svc = quote(&self.service),
        )
    }

    /// Read what [`Swap::probe`] printed.
    pub fn observed(out: &str) -> Observed {
        let field = |k: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .map(str::to_string)
        };
        let proxy = field("proxy").map(|v| match v.split_once(' ') {
            Some((s, l)) => (s.to_string(), l.to_string()),
            None => (v, String::new()),
        });
        let containers = out
            .lines()
            .filter_map(|l| l.strip_prefix("c=/"))
            .filter_map(|l| {
                let mut it = l.split('|');
                Some(Container {
                    name: it.next()?.into(),
                    state: it.next()?.into(),
                    fields: it.next()?.into(),
                    envsum: it.next()?.into(),
                    image: it.next()?.into(),
                })
            })
            .collect();
        Observed {
            upstream: field("upstream").filter(|u| !u.is_empty()),
            confsum: field("confsum").unwrap_or_default(),
            want: field("want").unwrap_or_default(),
            legacy: field("legacy").is_some(),
            certsum: field("certsum").unwrap_or_default(),
            keysum: field("keysum").unwrap_or_default(),
            proxy,
            containers,
        }
    }

    /// What is wrong with the proxy itself, if anything.
    pub fn proxy_problem(&self, o: &Observed) -> Option<String> {
        let p = &self.proxy;
        match &o.proxy {
            None => Some(format!("create proxy {p} on port {}", self.port)),
            Some((_, label)) if *label != self.proxy_label() => Some(format!(
                "recreate proxy {p}: its image, port or network changed"
            )),
            Some((state, _)) if state != "running" => {
                Some(format!("start proxy {p} (was {state})"))
            }
            Some(_) => None,
        }
    }

    /// The apply, given the caller's lines that set `$envsum`, `$img` and `$n` (the new
    /// container's name) and its `docker run` arguments (`--name "$n"`, no ports).
    pub fn apply(&self, name_sh: &str, run_args: &str) -> String {
        format!(
            "set -e\n\
             svc={svc}; p={p}; net={net}\n\
             {tls_fns}\
             {name_sh}\
             {HTTP_STATUS_FN}\
             now_ms() {{ ms=$(date +%s%N 2>/dev/null); case $ms in ''|*[!0-9]*) echo $(( $(date +%s) * 1000 ));; *) echo $(( ms / 1000000 ));; esac; }}\n\
             docker network inspect \"$net\" >/dev/null 2>&1 || docker network create \"$net\" >/dev/null\n\
             cur=$(docker cp \"$p:{CONF}\" - 2>/dev/null | tar -xOf - 2>/dev/null | sed -n 's/^# provision upstream: //p' | head -n 1 || true)\n\
             plabel=$(docker inspect -f '{{{{index .Config.Labels \"{PROXY_LABEL}\"}}}}' \"$p\" 2>/dev/null || echo none)\n\
             {conf_fn}\
             put() {{ t=$(mktemp -d); conf \"$1\" > \"$t/$2\"; tar -C \"$t\" -cf - \"$2\" | docker cp - \"$p:/etc/nginx/\"; rm -rf \"$t\"; }}\n\
             # Progress on stdout (the step's output): what happened, at ms since the start.\n\
             t0=$(now_ms); say() {{ echo \"$(( $(now_ms) - t0 )) ms: $1\"; }}\n\
             {workers_fns}\
             {lb_fns}\
             # The conf the switch writes: steady, or the one counting the LB's checks.\n\
             after=steady; drained=0\n\
             fail_switch() {{ echo \"$1\" >&2; if [ \"$started\" = 1 ]; then docker rm -f \"$n\" >/dev/null 2>&1 || true; echo \"the new container was removed\" >&2; fi; {undrain}exit 1; }}\n\
             {start_new}\
             {lb_out}\
             {switch}\
             {drain}\
             for c in $(docker ps -aq --filter label={SERVICE_LABEL}=\"$svc\"); do\n\
               c=$(docker inspect -f '{{{{.Name}}}}' \"$c\"); c=${{c#/}}\n\
               [ \"$c\" = \"$n\" ] && continue\n\
               docker stop \"$c\" >/dev/null 2>&1 || true; docker rm -f \"$c\" >/dev/null 2>&1 || true\n\
               say \"$c stopped and removed\"\n\
             done\n\
             {lb_back}",
            svc = quote(&self.service),
            p = quote(&self.proxy),
            net = quote(&self.network),
            conf_fn = self.conf_fn(),
            tls_fns = self.tls.as_ref().map(Tls::shell_fns).unwrap_or_default(),
            workers_fns = self.workers_fns(),
            lb_fns = self
                .lb
                .as_ref()
                .map(|lb| lb.shell_fns(&swap_in_sh(&format!(": > {} && ", super::lb_drain::LOG))))
                .unwrap_or_default(),
            undrain = if self.lb.is_some() {
                "if [ \"$drained\" = 1 ]; then lb_set steady \"$cur\" >/dev/null 2>&1 || true; fi; "
            } else {
                ""
            },
            lb_out = self.lb_out_sh(),
            lb_back = self.lb_back_sh(),
            start_new = self.start_new_sh(run_args),
            switch = self.switch_sh(),
            drain = self.drain_sh(),
        )
    }

    /// `conf UPSTREAM [steady|drain|back]`: the conf of that kind for that container.
    fn conf_fn(&self) -> String {
        let conf = |ready| quote(&self.nginx_conf_for(UPSTREAM, ready)).into_owned();
        let body = match self.lb {
            Some(_) => format!(
                "case ${{2:-steady}} in drain) printf '%s' {};; back) printf '%s' {};; *) printf '%s' {};; esac",
                conf(Ready::Draining),
                conf(Ready::Back),
                conf(Ready::Steady)
            ),
            None => format!("printf '%s' {}", conf(Ready::Steady)),
        };
        format!("conf() {{ {body} | sed \"s/{UPSTREAM}/$1/g\"; }}\n")
    }

    /// With an LB: once the new container is healthy and another one serves through a running
    /// proxy, answer 503 to the LB's checks and wait until it has seen that (lb_drain.rs).
    fn lb_out_sh(&self) -> String {
        if self.lb.is_none() {
            return String::new();
        }
        format!(
            "if [ -n \"$cur\" ] && [ \"$cur\" != \"$n\" ] && [ \"$plabel\" = {label} ] && [ \"$(docker inspect -f '{{{{.State.Status}}}}' \"$p\")\" = running ]; then\n\
               drained=1; after=back\n\
               if ! out=$(lb_set drain \"$cur\" 2>&1); then fail_switch \"the proxy refused the draining conf: $out\"; fi\n\
               lb_wait 503 \"$p out of the load balancer\" || fail_switch \"the host was not taken out of the load balancer; $cur keeps serving\"\n\
             fi\n",
            label = quote(&self.proxy_label()),
        )
    }

    /// With an LB, after a drained swap: wait until the LB has seen 200 again (so a rolling
    /// deploy's next batch never finds this host out too), then the steady conf.
    fn lb_back_sh(&self) -> String {
        if self.lb.is_none() {
            return String::new();
        }
        "if [ \"$drained\" = 1 ]; then\n\
           lb_wait 200 \"$p back in the load balancer\" || { echo \"$n serves, but the load balancer has not taken this host back\" >&2; exit 1; }\n\
           if ! out=$(lb_set steady \"$n\" 2>&1); then echo \"the proxy refused its steady conf: $out\" >&2; exit 1; fi\n\
         fi\n"
            .into()
    }

    /// Start `$n` unless the proxy already routes to it running; then poll its health path at
    /// its address on the network, every `interval`, for at most `timeout`. On failure the new
    /// container is removed and the proxy left as it was.
    fn start_new_sh(&self, run_args: &str) -> String {
        format!(
            "if [ \"$cur\" = \"$n\" ] && [ \"$(docker inspect -f '{{{{.State.Status}}}}' \"$n\" 2>/dev/null)\" = running ]; then\n\
               started=0\n\
             else\n\
               started=1\n\
               # A container of this name that is not the one serving is what a failed or\n\
               # killed earlier attempt left.\n\
               docker rm -f \"$n\" >/dev/null 2>&1 || true\n\
               docker run {run_args} >/dev/null\n\
               say \"$n started\"\n\
               start=$(now_ms)\n\
               while :; do\n\
                 # One inspect a round: running without a restart, and its address on the network.\n\
                 set -- $(docker inspect -f '{{{{.State.Status}}}} {{{{.RestartCount}}}} {{{{(index .NetworkSettings.Networks \"'\"$net\"'\").IPAddress}}}}' \"$n\" 2>/dev/null || true)\n\
                 if [ \"${{1:-}} ${{2:-}}\" != 'running 0' ]; then\n\
                   echo \"the new container $n exited right after start; its logs:\" >&2\n\
                   docker logs --tail 20 \"$n\" >&2 2>&1 || true\n\
                   docker rm -f \"$n\" >/dev/null 2>&1 || true\n\
                   echo \"the new container was removed; ${{cur:-nothing}} keeps serving through $p\" >&2\n\
                   exit 1\n\
                 fi\n\
                 code=$(http_status \"http://${{3:-}}:{port}\"{health})\n\
                 case $code in 2??) say \"$n healthy ({health_text} answered $code)\"; break;; esac\n\
                 if [ $(( $(now_ms) - start )) -ge {timeout} ]; then\n\
                   echo \"health check {health_text} of the new container $n answered $code, not 2xx, within {timeout_s}s; its logs:\" >&2\n\
                   docker logs --tail 20 \"$n\" >&2 2>&1 || true\n\
                   docker rm -f \"$n\" >/dev/null 2>&1 || true\n\
                   echo \"the new container was removed; ${{cur:-nothing}} keeps serving through $p\" >&2\n\
                   exit 1\n\
                 fi\n\
                 sleep {interval}\n\
               done\n\
             fi\n",
            port = self.app_port,
            health = quote(&self.health),
            health_text = self.health.replace(['"', '$', '`', '\\'], ""),
            timeout = self.timeout.as_millis(),
            timeout_s = self.timeout.as_secs_f64(),
            interval = format_args!("{:.2}", self.interval.as_secs_f64()),
        )
    }

    /// Point the proxy at `$n`: a new proxy gets its conf before it starts; a running one has
    /// the conf tested (`nginx -t` on a copy), written, and reloaded gracefully. The old
    /// workers' pids are kept for the drain.
    fn switch_sh(&self) -> String {
        format!(
            "old_workers=\n\
             # The proxy is recreated only when its image, port or network changed (a short gap).\n\
             if [ \"$plabel\" != none ] && [ \"$plabel\" != {label} ]; then docker rm -f \"$p\" >/dev/null; plabel=none; fi\n\
             if [ \"$plabel\" = none ]; then\n\
               # A container named like the service is what a stop-first run left: it may hold\n\
               # the port the proxy takes (the one gap of a switch to start-first).\n\
               if docker container inspect \"$svc\" >/dev/null 2>&1; then docker rm -f \"$svc\" >/dev/null; fi\n\
               docker create --name \"$p\" --label {PROXY_LABEL}={label} --network \"$net\" -p {port}:80 {https}--restart unless-stopped {image} >/dev/null\n\
               put \"$n\" nginx.conf\n\
               {tls_put}\
               docker start \"$p\" >/dev/null\n\
               say \"$p created, routing to $n\"\n\
               start=$(now_ms)\n\
               until docker top \"$p\" -o pid,args 2>/dev/null | grep -q 'nginx: worker process'; do\n\
                 if [ \"$(docker inspect -f '{{{{.State.Status}}}} {{{{.RestartCount}}}}' \"$p\")\" != 'running 0' ] || [ $(( $(now_ms) - start )) -ge 10000 ]; then\n\
                   docker logs --tail 20 \"$p\" >&2 2>&1 || true; fail_switch \"the proxy $p did not start\"\n\
                 fi\n\
                 sleep 0.05\n\
               done\n\
             else\n\
               if [ \"$(docker inspect -f '{{{{.State.Status}}}}' \"$p\")\" != running ]; then docker start \"$p\" >/dev/null; fi\n\
               {tls_update}\
               if [ \"$(conf \"$n\" \"$after\" | sha256sum | cut -c1-64)\" != \"$(docker cp \"$p:{CONF}\" - 2>/dev/null | tar -xOf - 2>/dev/null | sha256sum | cut -c1-64)\" ]; then\n\
                 old_workers=$(workers)\n\
                 # One exec: write a copy, test it, move it in place, reload gracefully.\n\
                 if ! out=$(conf \"$n\" \"$after\" | docker exec -i \"$p\" sh -c {swap_in} 2>&1); then fail_switch \"the proxy refused the new conf: $out\"; fi\n\
                 say \"$p reloaded, routing to $n\"\n\
               {tls_reload}\
               fi\n\
             fi\n",
            tls_put = if self.tls.is_some() { "tls_put\n" } else { "" },
            tls_update = if self.tls.is_some() {
                Tls::UPDATE_SH
            } else {
                ""
            },
            tls_reload = if self.tls.is_some() {
                Tls::RELOAD_SH
            } else {
                ""
            },
            label = quote(&self.proxy_label()),
            port = quote(&self.port),
            image = quote(&self.image),
            swap_in = swap_in_sh(""),
            https = self
                .tls
                .as_ref()
                .map(|t| format!("-p {}:443 ", quote(&t.https_port)))
                .unwrap_or_default(),
        )
    }

    /// After a reload, nginx's old workers finish their requests (to the old container) and
    /// exit; wait for that, for at most `drain` (nginx's own worker_shutdown_timeout) plus a
    /// margin, before the old container stops.
    fn drain_sh(&self) -> String {
        format!(
            "if [ -n \"$old_workers\" ]; then\n\
               if workers_gone \"$old_workers\"; then say \"old nginx workers drained\"; \
             else echo \"old nginx workers still draining after {drain_s}s; stopping the old container anyway\" >&2; fi\n\
             fi\n",
            drain_s = self.drain.as_secs_f64(),
        )
    }

    /// `workers`: the proxy's nginx worker pids; `workers_gone PIDS`: wait until none of
    /// them runs (true), for at most `drain` plus a margin (false). After a reload the old
    /// workers still answer with the old conf until they exit.
    fn workers_fns(&self) -> String {
        format!(
            "workers() {{ docker top \"$p\" -o pid,args 2>/dev/null | awk '/nginx: worker process/ {{print $1}}'; }}\n\
             workers_gone() {{\n\
               wg_start=$(now_ms)\n\
               while :; do\n\
                 alive=$(docker top \"$p\" -o pid 2>/dev/null | tail -n +2)\n\
                 left=0; for w in $1; do case \" $(echo $alive) \" in *\" $w \"*) left=1;; esac; done\n\
                 [ \"$left\" = 0 ] && return 0\n\
                 [ $(( $(now_ms) - wg_start )) -ge {bound} ] && return 1\n\
                 sleep 0.05\n\
               done\n\
             }}\n",
            bound = self.drain.as_millis() + 2000,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy() -> Proxy {
        Proxy {
            port: "127.0.0.1:8080".into(),
            app_port: Some(8000),
            health: Some("/health".into()),
            interval: None,
            timeout: None,
            drain: Some(Dur(Duration::from_secs(5))),
            image: None,
            name: None,
            lb: None,
            https_port: None,
            tls: None,
        }
    }

    #[test]
    fn defaults_and_validation() {
        let s = Swap::prepare("web", Some("net"), &proxy()).unwrap();
        assert_eq!(s.proxy, "web-proxy");
        assert_eq!(s.image, DEFAULT_IMAGE);
        assert_eq!(s.interval, Duration::from_millis(200));
        assert!(
            Swap::prepare("web", None, &proxy())
                .unwrap_err()
                .contains("network")
        );
        let bad = |p: Proxy| Swap::prepare("web", Some("net"), &p).unwrap_err();
        assert!(
            bad(Proxy {
                port: "80; rm".into(),
                ..proxy()
            })
            .contains("proxy.port")
        );
        assert!(
            bad(Proxy {
                health: Some("up".into()),
                ..proxy()
            })
            .contains("proxy.health")
        );
        assert!(
            bad(Proxy {
                name: Some("web".into()),
                ..proxy()
            })
            .contains("proxy.name")
        );
        assert!(
            bad(Proxy {
                image: Some("-x".into()),
                ..proxy()
            })
            .contains("proxy.image")
        );
    }

    #[test]
    fn conf_names_its_upstream_and_drain() {
        let s = Swap::prepare("web", Some("net"), &proxy()).unwrap();
        let c = s.nginx_conf("web-abc");
        assert!(c.contains("# provision upstream: web-abc\n"), "{c}");
        assert!(c.contains("server web-abc:8000;"), "{c}");
        assert!(c.contains("worker_shutdown_timeout 5000ms;"), "{c}");
        assert_ne!(s.conf_sum("web-abc"), s.conf_sum("web-def"));
    }

    #[test]
    fn observed_reads_the_probe() {
        let o = Swap::observed(
            "want=web-1\nproxy=running abc\nupstream=web-0\nconfsum=S\n\
             c=/web-0|running|image=1|E|sha256:0\nc=/web-1|exited|image=2|E|sha256:1\nlegacy=1\n",
        );
        assert_eq!(o.want, "web-1");
        assert_eq!(o.proxy, Some(("running".into(), "abc".into())));
        assert_eq!(o.upstream.as_deref(), Some("web-0"));
        assert_eq!(o.containers.len(), 2);
        assert_eq!(o.containers[1].state, "exited");
        assert!(o.legacy);
        let none = Swap::observed("want=web-1\nupstream=\nconfsum=e3b0\n");
        assert_eq!(none.proxy, None);
        assert_eq!(none.upstream, None);
    }

    #[test]
    fn scripts_are_valid_sh() {
        let plain = Swap::prepare("web", Some("net"), &proxy()).unwrap();
        let with_lb = Proxy {
            lb: Some(LbSpec::default()),
            ..proxy()
        };
        let lb = Swap::prepare("web", Some("net"), &with_lb).unwrap();
        let with_tls = Proxy {
            https_port: Some("8443".into()),
            tls: Some(super::super::docker_tls::TlsSpec {
                cert_secret: Some("C".into()),
                key_secret: Some("K".into()),
                redirect: None,
                hsts: None,
            }),
            ..proxy()
        };
        let tls = Swap::prepare("web", Some("net"), &with_tls).unwrap();
        let run = "--name \"$n\" -d img";
        for script in [
            tls.probe(),
            tls.apply("n=web-1\n", run),
            plain.probe(),
            plain.apply("n=web-1\n", run),
            lb.apply("n=web-1\n", run),
        ] {
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
}
