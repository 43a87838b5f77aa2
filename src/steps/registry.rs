//! The step kinds, listed once. Each `Variant => module` line of the `kinds!` list here
//! adds `module::Spec` (a [`Kind`]) to the playbook: a [`Spec`] variant, its name in
//! [`NAMES`] and its key for [`deserialize_kind`]. Everything else about a kind (name, default
//! step name, template file, stdin fields, preparation) comes from its own file.

use super::StepKind;
use super::kind::{Kind, PrepareCx, PrepareError};
use serde::de::{self, MapAccess};
use std::fmt;

/// Generates, from `Variant => module` lines: the `Spec` enum, `NAMES`, the dispatch to each
/// kind's impl (`Spec::as_kind`), `Serialize` for `Spec`, and `deserialize_kind`.
macro_rules! kinds {
    ($($variant:ident => $module:ident,)+) => {
        /// The kind-specific part of a playbook step, as written.
        #[derive(Debug, Clone)]
        pub enum Spec {
            $($variant(super::$module::Spec),)+
        }

        /// Every kind's name, which is its key in a `[[step]]`, in the order of the list.
        pub const NAMES: &[&str] = &[$(<super::$module::Spec as Kind>::NAME,)+];

        /// The module of each kind, for the test that no kind file is left out of the list.
        #[cfg(test)]
        const MODULES: &[&str] = &[$(stringify!($module),)+];

        impl Spec {
            fn as_kind(&self) -> &dyn AnyKind {
                match self {
                    $(Spec::$variant(s) => s,)+
                }
            }
        }

        /// A one-key table, `{ <kind> = { …fields } }`: the form `deserialize_kind` reads.
        impl serde::Serialize for Spec {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(Some(1))?;
                match self {
                    $(Spec::$variant(s) => map.serialize_entry(self.kind(), s)?,)+
                }
                map.end()
            }
        }

        /// The value of the map entry whose key was `name`, as that kind's spec.
        pub fn deserialize_kind<'de, A: MapAccess<'de>>(
            name: &str,
            map: &mut A,
        ) -> Result<Spec, A::Error> {
            $(if name == <super::$module::Spec as Kind>::NAME {
                return map.next_value().map(Spec::$variant);
            })+
            Err(de::Error::unknown_variant(name, NAMES))
        }
    };
}

kinds! {
    Command => command,
    Directory => directory,
    File => file,
    Template => template,
    EnvFile => env_file,
    Packages => packages,
    Git => git,
    DockerInstall => docker_install,
    DockerBuild => docker_build,
    DockerRun => docker_run,
    Image => image,
    Wait => wait,
    Migrate => migrate,
    Healthcheck => healthcheck,
    Compose => compose,
    LineInFile => line_in_file,
    User => user,
    Group => group,
    Systemd => systemd,
    Sync => sync,
}

/// The object-safe part of [`Kind`], so `Spec` dispatches through one generated `match`.
trait AnyKind {
    fn name(&self) -> &'static str;
    fn target(&self) -> String;
    fn template_file(&self) -> Option<&str>;
    fn on_stdin(&self, field: &str) -> bool;
    fn prepare(&self, cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError>;
}

impl<K: Kind> AnyKind for K {
    fn name(&self) -> &'static str {
        K::NAME
    }
    fn target(&self) -> String {
        Kind::target(self)
    }
    fn template_file(&self) -> Option<&str> {
        Kind::template_file(self)
    }
    fn on_stdin(&self, field: &str) -> bool {
        Kind::on_stdin(self, field)
    }
    fn prepare(&self, cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        Kind::prepare(self, cx)
    }
}

impl Spec {
    /// The kind's name (its playbook key).
    pub fn kind(&self) -> &'static str {
        self.as_kind().name()
    }

    /// A default step name from the kind's main field.
    pub fn default_name(&self) -> String {
        format!("{} {}", self.kind(), self.as_kind().target())
            .trim_end()
            .to_string()
    }

    /// Template files this step reads (their variables count as the step's references).
    pub fn template_file(&self) -> Option<&str> {
        self.as_kind().template_file()
    }

    /// Whether the rendered value at `path` (as the planner names fields of the serialized
    /// spec: `<kind>.<field>…`) travels on stdin, and so may hold a secret.
    pub fn on_stdin(&self, path: &str) -> bool {
        let field = path
            .strip_prefix(self.kind())
            .and_then(|p| p.strip_prefix('.'));
        field.is_some_and(|f| self.as_kind().on_stdin(f))
    }

    /// Prepare the (rendered) step's desired state for one host.
    pub fn prepare(&self, cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        self.as_kind().prepare(cx)
    }
}

/// Reads the one-key table that `Serialize` writes (the planner's JSON round trip).
impl<'de> serde::Deserialize<'de> for Spec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Spec, D::Error> {
        deserializer.deserialize_map(SpecVisitor)
    }
}

struct SpecVisitor;

impl<'de> de::Visitor<'de> for SpecVisitor {
    type Value = Spec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a table with exactly one of: {}", NAMES.join(", "))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Spec, A::Error> {
        let Some(name) = map.next_key::<String>()? else {
            return Err(de::Error::invalid_length(0, &self));
        };
        let spec = deserialize_kind(&name, &mut map)?;
        if map.next_key::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(2, &self));
        }
        Ok(spec)
    }
}

/// One minimal table per kind, in the order of `NAMES`, for tests that every kind parses.
#[cfg(test)]
pub(crate) const SAMPLES: &[(&str, &str)] = &[
    ("command", r#"{ run = "echo hi" }"#),
    ("directory", r#"{ path = "/srv/app" }"#),
    ("file", r#"{ src = "files/a", dest = "/etc/a" }"#),
    ("template", r#"{ src = "templates/a.j2", dest = "/etc/a" }"#),
    ("env_file", r#"{ dest = "/srv/.env" }"#),
    ("packages", r#"{ names = ["curl"] }"#),
    ("git", r#"{ repo = "/r", dest = "/srv/src" }"#),
    ("docker_install", "{}"),
    ("docker_build", r#"{ context = "/srv/src", tag = "app:1" }"#),
    ("docker_run", r#"{ name = "web", image = "app:1" }"#),
    ("image", r#"{ tag = "app:1" }"#),
    ("wait", r#"{ tcp = "localhost:80" }"#),
    ("migrate", r#"{ image = "app:1", command = "migrate" }"#),
    ("healthcheck", r#"{ url = "http://localhost/" }"#),
    ("compose", r#"{ file = "/srv/compose.yml" }"#),
    ("line_in_file", r#"{ path = "/etc/a", line = "x = 1" }"#),
    ("user", r#"{ name = "app" }"#),
    ("group", r#"{ name = "app" }"#),
    ("systemd", r#"{ name = "app.service" }"#),
    ("sync", r#"{ src = "site", dest = "/srv/site" }"#),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, table: &str) -> Spec {
        toml::from_str(&format!("{name} = {table}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn names_are_unique_and_every_kind_has_a_sample() {
        let mut unique: Vec<&str> = NAMES.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), NAMES.len(), "{NAMES:?}");
        let sampled: Vec<&str> = SAMPLES.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            sampled, NAMES,
            "add a sample for each kind, in the order of the list"
        );
    }

    #[test]
    fn each_variant_reads_and_writes_its_own_name() {
        for (name, table) in SAMPLES {
            let spec = sample(name, table);
            assert_eq!(spec.kind(), *name);
            assert!(
                spec.default_name().starts_with(name),
                "{}",
                spec.default_name()
            );
            let json = serde_json::to_value(&spec).unwrap();
            let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
            assert_eq!(keys, [name], "{json}");
            let back: Spec = serde_json::from_value(json).unwrap();
            assert_eq!(back.kind(), *name);
        }
    }

    #[test]
    fn a_table_needs_exactly_one_known_kind() {
        let e = serde_json::from_str::<Spec>(r#"{"comand": {"run": "x"}}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant `comand`"), "{e}");
        assert!(serde_json::from_str::<Spec>("{}").is_err());
        let two = r#"{"command": {"run": "x"}, "directory": {"path": "/x"}}"#;
        assert!(serde_json::from_str::<Spec>(two).is_err());
    }

    #[test]
    fn on_stdin_is_asked_of_the_kind_with_its_own_field_path() {
        let env_file = sample("env_file", r#"{ dest = "/e", vars = { A = "b" } }"#);
        assert!(env_file.on_stdin("env_file.vars.A"));
        assert!(!env_file.on_stdin("env_file.dest"));
        assert!(!env_file.on_stdin("vars.A"));
        let command = sample("command", r#"{ run = "x" }"#);
        assert!(!command.on_stdin("command.run"));
    }

    /// A kind file that implements `Kind` but is missing from the list would never be parsed.
    #[test]
    fn every_kind_file_is_in_the_list() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/steps");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            if text.lines().any(|l| l == "impl Kind for Spec {") {
                let stem = path.file_stem().unwrap().to_string_lossy().to_string();
                assert!(
                    MODULES.contains(&stem.as_str()),
                    "steps/{stem}.rs is not in kinds!"
                );
            }
        }
    }
}
