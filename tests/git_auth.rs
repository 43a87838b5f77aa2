//! The `git` step against a private repository: a second real sshd on loopback serves a bare
//! repository and accepts only the deploy key, which provision sends on stdin from a secret.
//! plan → up → up (0 changes), a wrong key fails clearly, and the key is in no output and on no
//! command line. The same for an HTTPS token against a real HTTP git server (nginx basic auth
//! in front of `git http-backend`).

/// No sample of the process list holds any of `needles`.
fn in_no_process(samples: &[String], needles: &[&str]) {
    assert!(!samples.is_empty(), "no process list sample was taken");
    for sample in samples {
        for n in needles {
            assert!(!sample.contains(n), "{n:?} on a command line:\n{sample}");
        }
    }
}

#[path = "support/forms.rs"]
mod forms;
#[path = "support/git_http.rs"]
mod git_http;
mod process_list;
mod support;
use forms::forms;
use process_list::watching_process_list;

use support::{ClientKey, SECRETS_ENV, Setup, Sshd, git};

/// A bare repository with one commit on `main`, under `dir`.
fn bare_repo(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    git(
        dir,
        &["init", "--quiet", "--bare", "-b", "main", "repo.git"],
    );
    git(dir, &["clone", "--quiet", "repo.git", "work"]);
    std::fs::write(dir.join("work/README"), "v1\n").unwrap();
    git(&dir.join("work"), &["add", "README"]);
    git(&dir.join("work"), &["commit", "--quiet", "-m", "v1"]);
    git(
        &dir.join("work"),
        &["push", "--quiet", "origin", "HEAD:main"],
    );
    dir.join("repo.git")
}

/// A second sshd serving a bare repository (one commit on `main`) to one deploy key only: the
/// key, the server, and the repository's ssh:// URL.
fn key_only_git_server(p: &support::Project) -> (ClientKey, Sshd, String) {
    let deploy = ClientKey::generate(&p.path("deploy"));
    let server = Sshd::start(&deploy);
    let bare = bare_repo(&p.path("gitsrv"));
    let url = format!("ssh://root@127.0.0.1:{}{}", server.port, bare.display());
    (deploy, server, url)
}

#[test]
fn deploy_key_and_pinned_host_key_clone_a_private_repo() {
    let s = Setup::with_env("gitkey", 1, "", SECRETS_ENV);
    s.p.write("secrets/test.env", "# none\n");
    let (deploy, server, url) = key_only_git_server(&s.p);
    let wrong = ClientKey::generate(&s.p.path("wrong"));
    let dest = s.p.remote_path("src");
    s.p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"checkout\"\ngit = {{ repo = \"{url}\", dest = \"{dest}\", ref = \"main\", key_secret = \"DEPLOY_KEY\", known_hosts = [\"{pin}\"] }}\n\n\
             [[step]]\nname = \"checkout through sudo\"\nbecome = true\ngit = {{ repo = \"{url}\", dest = \"{dest}-root\", ref = \"main\", key_secret = \"DEPLOY_KEY\", known_hosts = [\"{pin}\"] }}\n",
            pin = server.known_hosts_line()
        ),
    );
    let key = std::fs::read_to_string(&deploy.private).unwrap();
    let run = |args: &[&str], k: &str| s.p.run_env(args, &[("DEPLOY_KEY", k)]);
    let key_forms = forms(&key);
    let clean = |r: &support::Run| {
        let all = r.dump();
        for f in &key_forms {
            assert!(!all.contains(f.as_str()), "key leaked: {all}");
        }
    };

    let plan = run(&["plan", "test", "--output", "json", "-vv"], &key);
    plan.expect_code(0);
    clean(&plan);
    assert_eq!(plan.changed(), 2, "{}", plan.dump());
    assert!(!std::path::Path::new(&dest).exists(), "plan must not clone");
    let (up, ps) = watching_process_list(|| run(&["up", "test", "--output", "json", "-vv"], &key));
    up.expect_code(0);
    clean(&up);
    // The key's body lines (the armor lines are the same in every key).
    let body: Vec<&str> = key.lines().filter(|l| !l.starts_with("-----")).collect();
    in_no_process(&ps, &body);
    assert_eq!(up.changed(), 2, "{}", up.dump());
    // The second checkout read its key through sudo (a step's `become`), which closes fd 3.
    for d in [dest.clone(), format!("{dest}-root")] {
        assert_eq!(
            std::fs::read_to_string(format!("{d}/README")).unwrap(),
            "v1\n"
        );
    }
    let again = run(&["up", "test", "--output", "json"], &key);
    again.expect_code(0);
    assert_eq!(again.changed(), 0, "{}", again.dump());

    let bad = std::fs::read_to_string(&wrong.private).unwrap();
    let refused = run(&["up", "test"], &bad);
    assert_ne!(refused.code, 0, "{}", refused.dump());
    assert!(
        refused.dump().contains("Permission denied"),
        "a refused key says so: {}",
        refused.dump()
    );
    for f in forms(&bad) {
        assert!(!refused.dump().contains(&f), "wrong key leaked");
    }
}

#[test]
fn https_token_through_a_credential_helper_clones_from_a_basic_auth_server() {
    let s = Setup::with_env("githttp", 1, "", SECRETS_ENV);
    s.p.write("secrets/test.env", "# none\n");
    let root = s.p.path("gitsrv");
    bare_repo(&root);
    let token = "ghp_T0ken/with+odd=chars";
    let server = git_http::GitHttp::start(&root, "deployer", token);
    let dest = s.p.remote_path("src");
    s.p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"checkout\"\ngit = {{ repo = \"{}\", dest = \"{dest}\", ref = \"main\", token_secret = \"GIT_TOKEN\", username = \"deployer\" }}\n",
            server.url("repo.git")
        ),
    );
    let run = |args: &[&str], t: &str| s.p.run_env(args, &[("GIT_TOKEN", t)]);
    let clean = |r: &support::Run, t: &str| {
        let all = r.dump();
        for f in forms(t) {
            assert!(!all.contains(f.as_str()), "token leaked as {f:?}: {all}");
        }
    };

    let plan = run(&["plan", "test", "--output", "json", "-vv"], token);
    plan.expect_code(0);
    clean(&plan, token);
    assert_eq!(plan.changed(), 1, "{}", plan.dump());
    let (up, ps) = watching_process_list(|| run(&["up", "test", "--output", "json", "-vv"], token));
    up.expect_code(0);
    clean(&up, token);
    in_no_process(&ps, &["T0ken"]);
    assert_eq!(up.changed(), 1, "{}", up.dump());
    assert_eq!(
        std::fs::read_to_string(format!("{dest}/README")).unwrap(),
        "v1\n"
    );
    // The checkout keeps no credential: its remote URL has none, and no helper stored one.
    let config = std::fs::read_to_string(format!("{dest}/.git/config")).unwrap();
    assert!(!config.contains("T0ken"), "{config}");
    // The server saw the user authenticate (nginx logs the basic-auth user), with success.
    let log = server.access_log();
    assert!(log.contains(" deployer ") && log.contains(" 200 "), "{log}");
    let again = run(&["up", "test", "--output", "json"], token);
    again.expect_code(0);
    assert_eq!(again.changed(), 0, "{}", again.dump());

    std::fs::remove_dir_all(&dest).unwrap();
    let wrong = "not-the-T0ken-9";
    let refused = run(&["up", "test"], wrong);
    assert_eq!(refused.code, 3, "{}", refused.dump());
    assert!(
        refused.dump().contains("Authentication failed") || refused.dump().contains("401"),
        "a refused token says so: {}",
        refused.dump()
    );
    clean(&refused, wrong);
}

/// `ssh.forward_agent = true`: the host's git reaches the key-only git server with the key in
/// the operator's agent, through provision's own connection; without forwarding it is refused,
/// and forwarding with no agent is a config error before any host is contacted.
#[test]
fn a_forwarded_agent_clones_without_a_key_secret() {
    let s = Setup::with_env("gitagent", 1, "", SECRETS_ENV);
    s.p.write("secrets/test.env", "# none\n");
    let (deploy, server, url) = key_only_git_server(&s.p);
    let dest = s.p.remote_path("src");
    s.p.write(
        "playbooks/deploy.toml",
        &format!(
            "[[step]]\nname = \"checkout\"\ngit = {{ repo = \"{url}\", dest = \"{dest}\", ref = \"main\", known_hosts = [\"{}\"] }}\n",
            server.known_hosts_line()
        ),
    );
    let sock = s.p.path("agent.sock");
    let _agent = support::SshAgent::start(&sock, &[&deploy.private]);
    let with_agent = [("SSH_AUTH_SOCK", sock.display().to_string())];

    // Not forwarded: the host has no key for the git server.
    let refused = s.p.run_env(&["up", "test"], &with_agent);
    assert_eq!(refused.code, 3, "{}", refused.dump());
    assert!(
        refused.dump().contains("Permission denied"),
        "{}",
        refused.dump()
    );

    let toml = std::fs::read_to_string(s.p.path("provision.toml")).unwrap();
    s.p.write(
        "provision.toml",
        &toml.replacen("[ssh]\n", "[ssh]\nforward_agent = true\n", 1),
    );
    let plan =
        s.p.run_env(&["plan", "test", "--output", "json"], &with_agent);
    plan.expect_code(0);
    assert_eq!(plan.changed(), 1, "{}", plan.dump());
    let up =
        s.p.run_env(&["up", "test", "--output", "json"], &with_agent);
    up.expect_code(0);
    assert_eq!(up.changed(), 1, "{}", up.dump());
    assert_eq!(
        std::fs::read_to_string(format!("{dest}/README")).unwrap(),
        "v1\n"
    );
    let again =
        s.p.run_env(&["up", "test", "--output", "json"], &with_agent);
    again.expect_code(0);
    assert_eq!(again.changed(), 0, "{}", again.dump());

    let no_agent = s.p.run(&["up", "test"]);
    no_agent.expect_code(1);
    assert!(
        no_agent.stderr.contains("SSH_AUTH_SOCK"),
        "{}",
        no_agent.dump()
    );
}
