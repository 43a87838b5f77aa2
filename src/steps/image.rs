//! `image`: build once, ship everywhere. The image is built (when the tag is not there yet)
//! on the controller's own Docker engine, once per run whatever the number of hosts, and
//! every host ends up with the same image ID under `tag`:
//!
//! * `ship = "ssh"` (the default): `docker save` writes the image once to a private
//!   temporary file on the controller, streamed over the host's SSH connection into
//!   `docker load` (memory stays at one chunk per host, whatever the image's size);
//! * `ship = { registry, username, password }`: pushed once from the controller, then pulled
//!   on the host by digest (`repository@sha256:…`) and tagged; the password reaches
//!   `docker login --password-stdin` on stdin only, in a throwaway `DOCKER_CONFIG`. Without
//!   `username` and `password`, each engine's own login (or none) is used.
//!
//! A host is compared by image ID: `ok` when its `tag` already is the controller's image,
//! otherwise it receives it (nothing is sent to hosts that have it). The controller-side
//! work (inspect, build, save, push) is shared by every host through [`Shared`], and is only
//! done where some host needs it. In plan mode the controller is only read (`docker image
//! inspect`): when the tag exists there, the plan compares IDs exactly; when it would be
//! built, the plan says so for every host (the ID of a build is only known after it).

use super::docker_install::{docker_missing, docker_ok_probe};
use super::{Action, Decision, Kind, Outcome, PrepareCx, PrepareError, Probe, StepKind};
use crate::controller::docker::{self, Archive, Found};
use crate::transport::script::quote;
use futures::future::BoxFuture;
use serde::de::{self, MapAccess};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::OnceCell;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `repository:tag`, the name every host gets the image under.
    pub tag: String,
    /// Build it on the controller when the tag is not on the controller's engine. Without
    /// it, the image must already be there.
    pub build: Option<Build>,
    /// How hosts receive it (default `"ssh"`).
    #[serde(default)]
    pub ship: Ship,
}

/// Where the controller builds from, relative to the project root.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    #[serde(default = "dot")]
    pub context: String,
    /// Relative to the context (default `Dockerfile`).
    pub dockerfile: Option<String>,
}

fn dot() -> String {
    ".".into()
}

/// `"ssh"`, or a registry table.
#[derive(Debug, Clone, Default)]
pub enum Ship {
    #[default]
    Ssh,
    Registry(Registry),
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// `host[:port]` of the registry.
    pub registry: String,
    /// With `password`, or neither: then the engines' own logins (or none) are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Usually `{{ secrets.NAME }}`: it travels on stdin only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Serialize for Ship {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Ship::Ssh => s.serialize_str("ssh"),
            Ship::Registry(r) => r.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Ship {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ship, D::Error> {
        d.deserialize_any(ShipVisitor)
    }
}

struct ShipVisitor;

impl<'de> de::Visitor<'de> for ShipVisitor {
    type Value = Ship;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "\"ssh\" or { registry = \"host:port\", username = \"…\", password = \"{{ secrets.NAME }}\" }",
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Ship, E> {
        match v {
            "ssh" => Ok(Ship::Ssh),
            other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Ship, A::Error> {
        Registry::deserialize(de::value::MapAccessDeserializer::new(map)).map(Ship::Registry)
    }
}

impl Kind for Spec {
    const NAME: &'static str = "image";

    fn target(&self) -> String {
        self.tag.clone()
    }

    fn on_stdin(&self, field: &str) -> bool {
        field == "ship.password"
    }

    fn prepare(&self, cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        let desired = Desired::new(self, cx)?;
        Ok(Box::new(desired))
    }
}

/// What the controller knows of the image, shared by every host of the run.
#[derive(Default)]
struct Local {
    /// Plan mode: the tag on the controller's engine as it is (no build).
    looked_up: OnceCell<Result<Option<Found>, String>>,
    /// The image every host gets: found, or built when missing.
    image: OnceCell<Result<Found, String>>,
    /// `ship = "ssh"`: the archive every host's upload reads.
    archive: OnceCell<Result<Archive, String>>,
    /// `ship = registry`: `registry/repository@sha256:…` after the push.
    pushed: OnceCell<Result<String, String>>,
}

/// How the host gets it, as prepared.
#[derive(Debug, Clone)]
enum Via {
    Ssh,
    Registry {
        registry: String,
        login: Option<Login>,
        /// `registry/repository:tag`, the name pushed.
        remote: String,
    },
}

/// Who logs in to the registry.
#[derive(Debug, Clone)]
struct Login {
    username: String,
    password: Password,
}

/// A password whose `Debug` says nothing.
#[derive(Clone)]
struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

#[derive(Debug)]
pub struct Desired {
    tag: String,
    /// Absolute context and Dockerfile on the controller.
    build: Option<(PathBuf, PathBuf)>,
    via: Via,
    local: Arc<Local>,
    /// This host's step did the build (the one that ran it, of all hosts).
    built_here: AtomicBool,
}

impl fmt::Debug for Local {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Local")
    }
}

impl Desired {
    fn new(spec: &Spec, cx: &PrepareCx<'_>) -> Result<Desired, String> {
        super::shell::check_image_tag(&spec.tag)?;
        let build = spec
            .build
            .as_ref()
            .map(|b| build_paths(b, cx))
            .transpose()?;
        let via = match &spec.ship {
            Ship::Ssh => Via::Ssh,
            Ship::Registry(r) => registry_via(r, &spec.tag)?,
        };
        let key = format!(
            "{}\n{:?}\n{}",
            spec.tag,
            build,
            match &via {
                Via::Ssh => "ssh".to_string(),
                Via::Registry { remote, login, .. } => match login {
                    Some(l) => format!("{}@{remote}", l.username),
                    None => remote.clone(),
                },
            }
        );
        Ok(Desired {
            tag: spec.tag.clone(),
            build,
            via,
            local: cx.shared.get::<Local>(&key),
            built_here: AtomicBool::new(false),
        })
    }

    /// Plan mode reads the controller as it is; a run finds or builds the image once.
    async fn controller_work(&self, check: bool, observed: Option<&Probe>) -> Result<(), String> {
        if check {
            let found = self
                .local
                .looked_up
                .get_or_init(|| docker::inspect(&self.tag))
                .await;
            return found.as_ref().map(|_| ()).map_err(Clone::clone);
        }
        let image = self.local.image.get_or_init(|| self.find_or_build()).await;
        let id = image.as_ref().map_err(Clone::clone)?.id.clone();
        if observed.and_then(|p| p.field("id")) == Some(id.as_str()) {
            return Ok(());
        }
        match &self.via {
            Via::Ssh => {
                let archive = self
                    .local
                    .archive
                    .get_or_init(|| docker::save(&self.tag))
                    .await;
                archive.as_ref().map(|_| ()).map_err(Clone::clone)
            }
            Via::Registry {
                registry,
                login,
                remote,
            } => {
                let login = login
                    .as_ref()
                    .map(|l| (l.username.as_str(), l.password.0.as_str()));
                let push = docker::push(&self.tag, remote, registry, login);
                let pushed = self.local.pushed.get_or_init(|| push).await;
                pushed.as_ref().map(|_| ()).map_err(Clone::clone)
            }
        }
    }

    async fn find_or_build(&self) -> Result<Found, String> {
        if let Some(found) = docker::inspect(&self.tag).await? {
            return Ok(found);
        }
        let Some((context, dockerfile)) = &self.build else {
            return Err(self.not_on_controller());
        };
        self.built_here.store(true, Ordering::Relaxed);
        docker::build(&self.tag, context, dockerfile).await?;
        docker::inspect(&self.tag)
            .await?
            .ok_or_else(|| format!("{} is not on the controller after its build", self.tag))
    }

    fn not_on_controller(&self) -> String {
        format!(
            "{} is not on the controller's Docker engine and the step has no `build`; build or pull it there first",
            self.tag
        )
    }

    /// The controller's image as far as it is known: Err when looking failed, Ok(None) in
    /// plan mode when it would be built.
    fn local_image(&self) -> Result<Option<&Found>, String> {
        if let Some(image) = self.local.image.get() {
            return image.as_ref().map(Some).map_err(Clone::clone);
        }
        match self.local.looked_up.get() {
            Some(found) => found.as_ref().map(Option::as_ref).map_err(Clone::clone),
            None => Err("the image was not looked up on the controller".into()),
        }
    }

    /// `send over ssh` / `pull from <registry> by digest`.
    fn how(&self) -> String {
        match &self.via {
            Via::Ssh => "send over ssh".into(),
            Via::Registry { registry, .. } => format!("pull from {registry} by digest"),
        }
    }

    /// The digest the image has in the registry, when known (pushed, or pulled before).
    fn digest(&self) -> Option<String> {
        let Via::Registry { remote, .. } = &self.via else {
            return None;
        };
        if let Some(Ok(pushed)) = self.local.pushed.get() {
            return Some(pushed.clone());
        }
        let found = self.local_image().ok()??;
        docker::digest_in(&found.repo_digests, docker::repository_of(remote))
    }

    fn built_note(&self) -> &'static str {
        if self.built_here.load(Ordering::Relaxed) {
            " (built on the controller)"
        } else {
            ""
        }
    }
}

/// The build context and Dockerfile as absolute paths on the controller, checked to exist.
fn build_paths(b: &Build, cx: &PrepareCx<'_>) -> Result<(PathBuf, PathBuf), String> {
    let context = cx.root.join(&b.context);
    if !context.is_dir() {
        return Err(format!(
            "build.context `{}` is not a directory on the controller ({})",
            b.context,
            context.display()
        ));
    }
    let dockerfile = context.join(b.dockerfile.as_deref().unwrap_or("Dockerfile"));
    if !dockerfile.is_file() {
        return Err(format!(
            "build.dockerfile `{}` is not a file on the controller",
            dockerfile.display()
        ));
    }
    Ok((context, dockerfile))
}

fn registry_via(r: &Registry, tag: &str) -> Result<Via, String> {
    let registry = r.registry.trim_end_matches('/');
    if registry.is_empty() || registry.contains(['/', ' ']) {
        return Err(format!(
            "ship.registry `{}` must be host[:port], e.g. \"registry.example.com:5000\"",
            r.registry
        ));
    }
    super::shell::not_an_option("ship.registry", registry)?;
    let login = match (&r.username, &r.password) {
        (None, None) => None,
        (Some(username), Some(password)) => Some(login(username, password)?),
        _ => return Err("ship.username and ship.password go together: set both, or neither to use the engines' own logins".into()),
    };
    // A tag already naming the registry is pushed as it is.
    let remote = if tag.starts_with(&format!("{registry}/")) {
        tag.to_string()
    } else {
        format!("{registry}/{tag}")
    };
    Ok(Via::Registry {
        registry: registry.to_string(),
        login,
        remote,
    })
}

fn login(username: &str, password: &str) -> Result<Login, String> {
    if username.is_empty() || username.contains(char::is_whitespace) {
        return Err("ship.username must be a non-empty name without spaces".into());
    }
    super::shell::not_an_option("ship.username", username)?;
    if password.is_empty() {
        return Err("ship.password is empty (set it from a secret: \"{{ secrets.NAME }}\")".into());
    }
    Ok(Login {
        username: username.to_string(),
        password: Password(password.to_string()),
    })
}

/// `sha256:0123456789ab` of a full image ID, for messages.
fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len() - hex.len() + hex.len().min(12)]
}

/// After the transfer: the tag must name the controller's image, or the step fails.
fn verify(tag: &str, id: &str) -> String {
    format!(
        "got=$(docker image inspect -f '{{{{.Id}}}}' {tag} 2>/dev/null) || got=\n\
         if [ \"$got\" != {id} ]; then\n\
           echo \"{tag_msg} is ${{got:-missing}} on this host after the transfer, not {id_msg}\" >&2\n\
           exit 1\n\
         fi\n\
         printf 'id=%s\\n' \"$got\"\n",
        tag = quote(tag),
        id = quote(id),
        tag_msg = tag.replace(['"', '\\', '$', '`'], ""),
        id_msg = id.replace(['"', '\\', '$', '`'], ""),
    )
}

/// A change that cannot run: the controller-side part did not happen.
fn refuse(why: &str) -> Action {
    Action::script(format!("echo {} >&2\nexit 1\n", quote(why)))
}

impl StepKind for Desired {
    fn probe(&self, _check: bool) -> Option<String> {
        Some(format!(
            "{}printf 'id=%s\\n' \"$(docker image inspect -f '{{{{.Id}}}}' {} 2>/dev/null)\"\n",
            docker_ok_probe(),
            quote(&self.tag)
        ))
    }

    fn controller<'a>(
        &'a self,
        check: bool,
        observed: Option<&'a Probe>,
    ) -> Option<BoxFuture<'a, Result<(), String>>> {
        Some(Box::pin(self.controller_work(check, observed)))
    }

    fn decide(&self, observed: Option<&Probe>) -> Decision {
        let p = observed.cloned().unwrap_or_default();
        let local = match self.local_image() {
            Ok(local) => local,
            Err(m) => return Decision::Fail(m),
        };
        let Some(local) = local else {
            if self.build.is_none() {
                return Decision::Fail(self.not_on_controller());
            }
            return Decision::change(format!(
                "build {} on the controller, then {} to this host",
                self.tag,
                self.how()
            ));
        };
        let wanted = format!("{} {} ({})", self.how(), self.tag, short(&local.id));
        if let Some(d) = docker_missing(&p, wanted.clone()) {
            return d;
        }
        match p.field("id").filter(|id| !id.is_empty()) {
            Some(id) if id == local.id => Decision::Ok(format!(
                "{} is {} here, as on the controller{}",
                self.tag,
                short(id),
                self.built_note()
            )),
            Some(id) => Decision::change(format!(
                "{wanted}: this host's {} is {}{}",
                self.tag,
                short(id),
                self.built_note()
            )),
            None => Decision::change(format!(
                "{wanted}: this host has no {}{}",
                self.tag,
                self.built_note()
            )),
        }
    }

    fn apply(&self) -> Action {
        let id = match self.local_image() {
            Ok(Some(found)) => found.id.clone(),
            Ok(None) => return refuse("provision: the image was not built on the controller"),
            Err(m) => return refuse(&m),
        };
        match &self.via {
            Via::Ssh => match self.local.archive.get() {
                // `docker load` takes the whole archive or nothing: a broken stream leaves
                // the host's images as they were.
                Some(Ok(archive)) => Action {
                    script: format!("set -e\ndocker load\n{}", verify(&self.tag, &id)),
                    stdin_file: Some(archive.path()),
                    ..Action::default()
                },
                Some(Err(m)) => refuse(m),
                None => refuse("provision: the image was not saved on the controller"),
            },
            Via::Registry {
                registry, login, ..
            } => match self.local.pushed.get() {
                Some(Ok(by_digest)) => Action {
                    script: pull_script(registry, login.as_ref(), by_digest, &self.tag, &id),
                    stdin: login.as_ref().map(|l| l.password.0.clone().into_bytes()),
                    ..Action::default()
                },
                Some(Err(m)) => refuse(m),
                None => refuse("provision: the image was not pushed from the controller"),
            },
        }
    }

    fn register(&self, o: &Outcome<'_>) -> serde_json::Value {
        // The controller's ID is what the host has now (or gets); unknown before a build.
        let id = match self.local_image() {
            Ok(Some(found)) => found.id.clone(),
            _ => String::new(),
        };
        let digest = self
            .digest()
            .and_then(|d| d.split_once('@').map(|(_, d)| d.to_string()))
            .unwrap_or_default();
        serde_json::json!({ "changed": o.changed, "tag": self.tag, "id": id, "digest": digest })
    }
}

/// On the host: log in with the password from stdin in a throwaway DOCKER_CONFIG (removed on
/// exit, so no credential stays on the host), pull by digest, tag, check the ID. Without a
/// login, the host's own docker config is used.
fn pull_script(
    registry: &str,
    login: Option<&Login>,
    by_digest: &str,
    tag: &str,
    id: &str,
) -> String {
    let (setup, config) = match login {
        Some(l) => (
            format!(
                "cfg=$(mktemp -d) || exit 1\n\
                 trap 'rm -rf \"$cfg\"' EXIT\n\
                 set -e\n\
                 DOCKER_CONFIG=\"$cfg\" docker login --username {user} --password-stdin {registry} >/dev/null\n",
                user = quote(&l.username),
                registry = quote(registry),
            ),
            "DOCKER_CONFIG=\"$cfg\" ",
        ),
        None => ("set -e\n".to_string(), ""),
    };
    format!(
        "{setup}{config}docker pull -q {by_digest} >/dev/null\n\
         docker tag {by_digest} {tag}\n\
         {}",
        verify(tag, id),
        by_digest = quote(by_digest),
        tag = quote(tag),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Secrets;
    use crate::steps::Shared;
    use crate::template::Templates;

    fn spec(toml_text: &str) -> Result<Spec, String> {
        toml::from_str::<std::collections::BTreeMap<String, Spec>>(&format!("image = {toml_text}"))
            .map(|mut m| m.remove("image").unwrap())
            .map_err(|e| e.to_string())
    }

    fn prepared(s: &Spec, shared: &Shared) -> Result<Desired, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        let templates = Templates::new(dir.path());
        let secrets = Secrets::default();
        let ctx = minijinja::Value::from(());
        let cx = PrepareCx {
            app: "a",
            env: "e",
            allow_recreate: false,
            root: dir.path(),
            templates: &templates,
            context: &ctx,
            secrets: &secrets,
            shared,
        };
        Desired::new(s, &cx)
    }

    fn with_image(d: &Desired, id: &str) {
        let found = Found {
            id: id.into(),
            repo_digests: vec!["r:5000/app@sha256:dd".into()],
        };
        let _ = d.local.image.set(Ok(found));
    }

    #[test]
    fn ship_is_ssh_or_a_registry_table() {
        assert!(matches!(
            spec(r#"{ tag = "a:1" }"#).unwrap().ship,
            Ship::Ssh
        ));
        assert!(matches!(
            spec(r#"{ tag = "a:1", ship = "ssh" }"#).unwrap().ship,
            Ship::Ssh
        ));
        let r = spec(
            r#"{ tag = "a:1", ship = { registry = "r:5000", username = "u", password = "p" } }"#,
        )
        .unwrap();
        assert!(matches!(r.ship, Ship::Registry(_)));
        let e = spec(r#"{ tag = "a:1", ship = "scp" }"#).unwrap_err();
        assert!(e.contains("expected \"ssh\" or { registry"), "{e}");
        let e = spec(r#"{ tag = "a:1", ship = { registry = "r", user = "u", password = "p" } }"#)
            .unwrap_err();
        assert!(e.contains("unknown field `user`"), "{e}");
        // The planner's JSON round trip keeps the form.
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["ship"]["registry"], "r:5000");
        let back: Spec = serde_json::from_value(json).unwrap();
        assert!(matches!(back.ship, Ship::Registry(_)));
        let ssh: Spec =
            serde_json::from_value(serde_json::json!({"tag": "a:1", "ship": "ssh"})).unwrap();
        assert!(matches!(ssh.ship, Ship::Ssh));
    }

    #[test]
    fn only_the_password_travels_on_stdin() {
        let s = spec(r#"{ tag = "a:1" }"#).unwrap();
        assert!(s.on_stdin("ship.password"));
        assert!(!s.on_stdin("ship.username"));
        assert!(!s.on_stdin("tag"));
    }

    #[test]
    fn bad_values_are_refused() {
        let shared = Shared::default();
        for (t, why) in [
            (r#"{ tag = "app" }"#, "repository:tag"),
            (r#"{ tag = "-x:1" }"#, "tag"),
            (
                r#"{ tag = "a:1", build = { context = "nope" } }"#,
                "not a directory",
            ),
            (
                r#"{ tag = "a:1", build = { dockerfile = "Other" } }"#,
                "not a file",
            ),
            (
                r#"{ tag = "a:1", ship = { registry = "r/x", username = "u", password = "p" } }"#,
                "host[:port]",
            ),
            (
                r#"{ tag = "a:1", ship = { registry = "r", username = "u", password = "" } }"#,
                "password is empty",
            ),
            (
                r#"{ tag = "a:1", ship = { registry = "r", username = "u" } }"#,
                "go together",
            ),
        ] {
            let e = prepared(&spec(t).unwrap(), &shared).unwrap_err();
            assert!(e.contains(why), "{t}: {e}");
        }
        let ok = prepared(&spec(r#"{ tag = "a:1", build = {} }"#).unwrap(), &shared).unwrap();
        assert!(ok.build.as_ref().unwrap().1.ends_with("Dockerfile"));
    }

    #[test]
    fn hosts_of_a_run_share_the_controllers_image() {
        let shared = Shared::default();
        let s = spec(r#"{ tag = "a:1" }"#).unwrap();
        let (one, two) = (
            prepared(&s, &shared).unwrap(),
            prepared(&s, &shared).unwrap(),
        );
        assert!(Arc::ptr_eq(&one.local, &two.local));
        let other = prepared(&spec(r#"{ tag = "a:2" }"#).unwrap(), &shared).unwrap();
        assert!(!Arc::ptr_eq(&one.local, &other.local));
    }

    #[test]
    fn decided_by_image_id() {
        let shared = Shared::default();
        let d = prepared(&spec(r#"{ tag = "app:1" }"#).unwrap(), &shared).unwrap();
        with_image(&d, "sha256:0123456789abcdef");
        let same = Probe::with_out("docker=ok\nid=sha256:0123456789abcdef\n");
        assert!(matches!(d.decide(Some(&same)), Decision::Ok(_)));
        let other = Probe::with_out("docker=ok\nid=sha256:ffff\n");
        assert_eq!(
            d.decide(Some(&other)),
            Decision::change(
                "send over ssh app:1 (sha256:0123456789ab): this host's app:1 is sha256:ffff"
            )
        );
        let none = Probe::with_out("docker=ok\nid=\n");
        assert_eq!(
            d.decide(Some(&none)),
            Decision::change("send over ssh app:1 (sha256:0123456789ab): this host has no app:1")
        );
    }

    #[test]
    fn plan_says_when_the_image_would_be_built_first() {
        let shared = Shared::default();
        let d = prepared(&spec(r#"{ tag = "app:1", build = {} }"#).unwrap(), &shared).unwrap();
        let _ = d.local.looked_up.set(Ok(None));
        let p = Probe::with_out("docker=ok\nid=\n");
        assert_eq!(
            d.decide(Some(&p)),
            Decision::change("build app:1 on the controller, then send over ssh to this host")
        );
        let no_build = prepared(&spec(r#"{ tag = "app:1" }"#).unwrap(), &shared).unwrap();
        let _ = no_build.local.looked_up.set(Ok(None));
        assert!(matches!(no_build.decide(Some(&p)), Decision::Fail(m) if m.contains("no `build`")));
    }

    #[test]
    fn registry_apply_keeps_the_password_off_the_script() {
        let shared = Shared::default();
        let s = spec(r#"{ tag = "app:1", ship = { registry = "r:5000", username = "ci", password = "Pw-s3cret" } }"#)
            .unwrap();
        let d = prepared(&s, &shared).unwrap();
        with_image(&d, "sha256:0123");
        let _ = d.local.pushed.set(Ok("r:5000/app@sha256:dd".into()));
        let a = d.apply();
        assert_eq!(a.stdin.as_deref(), Some(&b"Pw-s3cret"[..]));
        assert!(!a.script.contains("Pw-s3cret"), "{}", a.script);
        assert!(!format!("{d:?}").contains("Pw-s3cret"));
        assert!(
            a.script.contains("--password-stdin 'r:5000'"),
            "{}",
            a.script
        );
        assert!(
            a.script.contains("docker pull -q 'r:5000/app@sha256:dd'"),
            "{}",
            a.script
        );
        assert!(
            a.script
                .contains("docker tag 'r:5000/app@sha256:dd' 'app:1'"),
            "{}",
            a.script
        );
        let v = d.register(&Outcome {
            changed: true,
            check_mode: false,
            probe: None,
            applied: None,
        });
        assert_eq!(v["id"], "sha256:0123");
        assert_eq!(v["digest"], "sha256:dd");
    }

    #[test]
    fn without_a_login_the_hosts_own_docker_config_pulls() {
        let shared = Shared::default();
        let s = spec(r#"{ tag = "app:1", ship = { registry = "r:5000" } }"#).unwrap();
        let d = prepared(&s, &shared).unwrap();
        with_image(&d, "sha256:0123");
        let _ = d.local.pushed.set(Ok("r:5000/app@sha256:dd".into()));
        let a = d.apply();
        assert_eq!(a.stdin, None);
        assert!(!a.script.contains("login"), "{}", a.script);
        assert!(!a.script.contains("DOCKER_CONFIG"), "{}", a.script);
        assert!(
            a.script
                .starts_with("set -e\ndocker pull -q 'r:5000/app@sha256:dd'"),
            "{}",
            a.script
        );
    }

    #[test]
    fn a_missing_controller_side_fails_the_apply_not_the_host() {
        let shared = Shared::default();
        let d = prepared(&spec(r#"{ tag = "app:1" }"#).unwrap(), &shared).unwrap();
        with_image(&d, "sha256:0123");
        let a = d.apply();
        assert!(a.stdin_file.is_none());
        assert!(a.script.contains("exit 1"), "{}", a.script);
    }

    #[test]
    fn the_verify_script_fails_on_another_id() {
        let script = verify("app:1", "sha256:x");
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("docker() {{ echo sha256:y; }}\n{script}"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("app:1 is sha256:y on this host after the transfer, not sha256:x"),
            "{err}"
        );
    }

    #[test]
    fn short_ids() {
        assert_eq!(short("sha256:0123456789abcdef"), "sha256:0123456789ab");
        assert_eq!(short("sha256:01"), "sha256:01");
        assert_eq!(short("abc"), "abc");
    }
}
