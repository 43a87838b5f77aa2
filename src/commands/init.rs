//! `provision init`: a starting project that deploys as it is: a containerised web app (the
//! repo's examples/hello) built on the host, PostgreSQL, migrations and a zero-downtime front
//! proxy, with secrets generated once and strict host keys.

use crate::config::ConfigError;
use crate::report::Output;
use crate::secrets::Redactor;
use std::path::Path;

const PROJECT: &str = r#"# provision.toml: the app, its environments and how to reach their hosts.
# `provision plan prod` shows what would change; `provision up prod` deploys:
# Docker on the host, the app in app/ built into an image there, PostgreSQL with a volume,
# migrations once per version, and the app behind a front proxy that swaps releases without
# dropping a request. A new release: change app/, then `provision up prod -e version=2`.
app = "myapp"

[vars]
# The image tag and release name: bump it (or pass -e version=...) for every new release.
version = "1"
base = "/srv/myapp"
http_port = 8080
greeting = "Hello from myapp"
# The app image is built FROM this: any image with busybox httpd and psql. provision's own
# `scripts/base-images.sh` builds provision-local/base:1 and provision-local/postgres:15
# without a registry.
base_image = "provision-local/base:1"
db_image = "provision-local/postgres:15"
proxy_image = "provision-local/nginx:1"

[ssh]
# Host keys are checked strictly: a host's key must be in ~/.ssh/known_hosts or
# .provision/known_hosts (`ssh-keyscan -t ed25519 HOST >> .provision/known_hosts`, then check
# its fingerprint), or pinned per env with host_key = "SHA256:...". "accept-new" pins a
# first-seen key instead.
known_hosts = "strict"
connect_timeout = "10s"

[env.prod]
# A list of hosts, or roles: hosts = { web = ["deploy@203.0.113.10"], db = ["deploy@203.0.113.20"] }
hosts = ["deploy@203.0.113.10:22"]
secrets = "secrets/prod.env"
ssh = { become = true }
"#;

const PLAYBOOK: &str = r#"# playbooks/deploy.toml: the steps `provision up <env>` runs, in order, on every host.
# Every step is idempotent: a second `up` changes nothing and says so.
release = "{{ version }}"

[[step]]
name = "docker"
docker_install = {}

[[step]]
name = "app folder"
directory = { path = "{{ base }}", mode = "0755" }

[[step]]
name = "app source"
sync = { src = "app", dest = "{{ base }}/app", delete = true }

[[step]]
name = "app env"
env_file = { dest = "{{ base }}/app.env", keys = ["APP_SECRET"], vars = { PGHOST = "{{ app }}-db", PGUSER = "{{ app }}", PGDATABASE = "{{ app }}", PGPASSWORD = "{{ secrets.DB_PASSWORD }}", APP_GREETING = "{{ greeting }}" } }

[[step]]
name = "db env"
env_file = { dest = "{{ base }}/db.env", keys = [], vars = { POSTGRES_USER = "{{ app }}", POSTGRES_DB = "{{ app }}", POSTGRES_PASSWORD = "{{ secrets.DB_PASSWORD }}" } }

[[step]]
name = "image"
docker_build = { context = "{{ base }}/app", tag = "{{ app }}:{{ version }}", build_args = { BASE = "{{ base_image }}" }, keep = 5 }

[[step]]
name = "database"
docker_run = { name = "{{ app }}-db", image = "{{ db_image }}", env_file = "{{ base }}/db.env", volumes = ["{{ app }}-pgdata:/var/lib/postgresql/data"], network = "{{ app }}-net", stateful = true }

[[step]]
name = "database ready"
wait = { command = "docker exec {{ app | shell_quote }}-db pg_isready -q -U {{ app | shell_quote }}", timeout = "60s", interval = "1s" }

[[step]]
name = "migrations"
migrate = { image = "{{ app }}:{{ version }}", command = "APP_RELEASE={{ version | shell_quote }} /app/migrate", env_file = "{{ base }}/app.env", network = "{{ app }}-net", pull = "never" }

[[step]]
name = "app"
docker_run = { name = "{{ app }}", image = "{{ app }}:{{ version }}", env_file = "{{ base }}/app.env", env = { APP_RELEASE = "{{ version }}" }, network = "{{ app }}-net", pull = "never", strategy = "start-first", proxy = { port = "{{ http_port }}", app_port = 8000, health = "/cgi-bin/health", image = "{{ proxy_image }}" } }
"#;

/// The app: examples/hello, the app the repo's own deploy ships (busybox httpd + CGI + psql).
const APP: [(&str, &str); 7] = [
    (
        "app/Dockerfile",
        include_str!("../../examples/hello/Dockerfile"),
    ),
    ("app/serve", include_str!("../../examples/hello/serve")),
    ("app/migrate", include_str!("../../examples/hello/migrate")),
    (
        "app/migrations/001_greetings.sql",
        include_str!("../../examples/hello/migrations/001_greetings.sql"),
    ),
    (
        "app/www/index.html",
        include_str!("../../examples/hello/www/index.html"),
    ),
    (
        "app/www/cgi-bin/hello",
        include_str!("../../examples/hello/www/cgi-bin/hello"),
    ),
    (
        "app/www/cgi-bin/health",
        include_str!("../../examples/hello/www/cgi-bin/health"),
    ),
];

const GITIGNORE: &str = "# provision's local state (pinned host keys, run logs) and the secrets\n.provision/\nsecrets/*.env\n";
const SECRETS_IGNORE: &str = "# secrets never go into git\n*\n!.gitignore\n";

/// secrets/prod.env with values made now, once: nothing like `change-me` is ever deployed.
fn secrets_file() -> std::io::Result<String> {
    Ok(format!(
        "# Made by `provision init`: random, kept here (0600, never committed).\nAPP_SECRET={}\nDB_PASSWORD={}\n",
        random_hex()?,
        random_hex()?
    ))
}

/// 32 hex digits from the kernel's CSPRNG.
fn random_hex() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub fn init(dir: &Path) -> Result<(), ConfigError> {
    let secrets = secrets_file()
        .map_err(|e| ConfigError::new("/dev/urandom", format!("cannot read: {e}")))?;
    let mut files: Vec<(&str, &str)> = vec![
        ("provision.toml", PROJECT),
        ("playbooks/deploy.toml", PLAYBOOK),
        (".gitignore", GITIGNORE),
        ("secrets/.gitignore", SECRETS_IGNORE),
        ("secrets/prod.env", &secrets),
    ];
    files.extend(APP);
    for (rel, _) in &files {
        let path = dir.join(rel);
        if path.exists() {
            return Err(
                ConfigError::new(&path, "already exists; init never overwrites files")
                    .with_help("run init in an empty folder, or remove the file"),
            );
        }
    }
    // The secrets just made are masked like any other (nothing prints them anyway).
    let redactor = Redactor::default();
    let out = Output::text(redactor);
    for (rel, content) in &files {
        let path = dir.join(rel);
        write(&path, content, mode_of(rel))
            .map_err(|e| ConfigError::new(&path, format!("cannot write: {e}")))?;
        out.line(&format!("created {}", path.display()));
    }
    Ok(())
}

/// Scripts run in the image are executable; the secrets file is the owner's alone.
fn mode_of(rel: &str) -> u32 {
    match rel {
        "secrets/prod.env" => 0o600,
        "app/serve" | "app/migrate" => 0o755,
        r if r.starts_with("app/www/cgi-bin/") => 0o755,
        _ => 0o644,
    }
}

fn write(path: &Path, content: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(content.as_bytes())
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
        assert_eq!(pb.steps.len(), 10);
        let secrets = std::fs::read_to_string(dir.path().join("secrets/prod.env")).unwrap();
        assert!(!secrets.contains("change-me"), "{secrets}");
        let again = secrets_file().unwrap();
        assert_ne!(
            secrets.lines().nth(1),
            again.lines().nth(1),
            "a new secret each time"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = |rel: &str| {
            let m = std::fs::metadata(dir.path().join(rel)).unwrap();
            m.permissions().mode() & 0o777
        };
        assert_eq!(mode("secrets/prod.env"), 0o600);
        assert_eq!(mode("app/www/cgi-bin/health"), 0o755);
        assert!(init(dir.path()).is_err());
    }
}
