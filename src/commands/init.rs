//! `provision init`: a starting project that `provision plan` accepts as it is.

use crate::config::ConfigError;
use crate::report::Output;
use crate::secrets::Redactor;
use std::path::Path;

const PROJECT: &str = r#"# provision.toml: the app, its environments and how to reach their hosts.
app = "myapp"
# repo = "https://example.com/acme/myapp.git"

[vars]
port = 8000

[ssh]
# Strict host-key checking by default; "accept-new" pins a first-seen key in .provision/known_hosts.
known_hosts = "accept-new"
connect_timeout = "10s"

[env.prod]
# A list of hosts, or roles: hosts = { web = ["deploy@203.0.113.10"], db = ["deploy@203.0.113.20"] }
hosts = ["deploy@203.0.113.10:22"]
secrets = "secrets/prod.env"
vars = { port = 8080 }
ssh = { become = true }
"#;

const PLAYBOOK: &str = r#"# playbooks/deploy.toml: the steps `provision up <env>` runs, in order, on every host.

[[step]]
name = "app folder"
directory = { path = "/srv/{{ app }}", mode = "0755" }

[[step]]
name = "app config"
template = { src = "templates/app.conf.j2", dest = "/srv/{{ app }}/app.conf", mode = "0644" }

[[step]]
name = "app secrets"
env_file = { dest = "/srv/{{ app }}/.env" }

[[step]]
name = "marker"
command = { run = "date > /srv/{{ app }}/installed", creates = "/srv/{{ app }}/installed" }
"#;

const TEMPLATE: &str = "# rendered by provision for {{ app }} ({{ env }})\nport = {{ port }}\n";
const SECRETS_IGNORE: &str = "# secrets never go into git\n*\n!.gitignore\n";
const SECRETS_EXAMPLE: &str = "APP_SECRET=change-me\n";

pub fn init(dir: &Path) -> Result<(), ConfigError> {
    let files: [(&str, &str); 5] = [
        ("provision.toml", PROJECT),
        ("playbooks/deploy.toml", PLAYBOOK),
        ("templates/app.conf.j2", TEMPLATE),
        ("secrets/.gitignore", SECRETS_IGNORE),
        ("secrets/prod.env", SECRETS_EXAMPLE),
    ];
    for (rel, _) in &files {
        let path = dir.join(rel);
        if path.exists() {
            return Err(
                ConfigError::new(&path, "already exists; init never overwrites files")
                    .with_help("run init in an empty folder, or remove the file"),
            );
        }
    }
    // A new project has no secrets yet: nothing to mask.
    let out = Output::text(Redactor::default());
    for (rel, content) in &files {
        let path = dir.join(rel);
        let io = |e: std::io::Error| ConfigError::new(&path, format!("cannot write: {e}"));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, content).map_err(io)?;
        out.line(&format!("created {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Playbook, Project};

    #[test]
    fn scaffold_parses_and_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path()).unwrap();
        let p = Project::load(&dir.path().join("provision.toml")).unwrap();
        assert_eq!(p.app, "myapp");
        let pb = Playbook::load(
            &dir.path().join("playbooks/deploy.toml"),
            "playbooks/deploy.toml",
        )
        .unwrap();
        assert_eq!(pb.steps.len(), 4);
        assert!(init(dir.path()).is_err());
    }
}
