//! HTTPS on the start-first front proxy (`proxy.tls`), driven by the real binary over a real
//! sshd against the tests' own dockerd, checked with a real `curl --cacert`.
//!
//! `certificate_from_secrets_serves_https_and_redirects`: a certificate and key (made with
//! openssl) given as secrets; plan on a fresh host predicts exactly what up changes; HTTPS
//! answers with that certificate, HTTP redirects to it, HSTS is sent, the key is 0600 in the
//! proxy; a second up changes nothing; a new certificate is a graceful reload (same proxy
//! container) that plan predicts; the key appears in no output (also base64, -vv, JSON).

#[path = "support/docker.rs"]
mod docker_support;
mod support;

use std::path::Path;
use std::process::Command;

use docker_support::*;
use support::*;

const STOP_FIRST: &str = r#"ports = ["127.0.0.1:{{ http_port }}:8000"], network = "{{ app }}-net", pull = "never", healthcheck = { url = "http://127.0.0.1:{{ http_port }}/cgi-bin/health", timeout = "30s" } }"#;
const WITH_TLS: &str = r#"network = "{{ app }}-net", pull = "never", strategy = "start-first", proxy = { port = "127.0.0.1:{{ http_port }}", https_port = "127.0.0.1:{{ https_port }}", app_port = 8000, health = "/cgi-bin/health", timeout = "20s", drain = "2s", tls = { cert_secret = "TLS_CERT", key_secret = "TLS_KEY", hsts = true } } }"#;
const DOMAIN: &str = "app.provision.test";

/// A self-signed certificate for DOMAIN and its key, made by openssl in `dir`.
fn make_cert(dir: &Path) -> (String, String) {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", &format!("/CN={DOMAIN}")])
        .args(["-addext", &format!("subjectAltName=DNS:{DOMAIN}")])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    (read("cert.pem"), read("key.pem"))
}

/// curl over HTTPS to DOMAIN (resolved to loopback), trusting only `ca`: (exit ok, output).
fn curl_https(port: u16, ca: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{DOMAIN}:{port}:127.0.0.1")])
        .args(extra)
        .arg(format!("https://{DOMAIN}:{port}/"))
        .output()
        .expect("run curl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

struct Tls<'a> {
    d: &'a Deploy,
    cert: String,
    key: String,
    /// Every key ever used, with its base64 form: none may show in any output.
    leaks: Vec<String>,
}

impl Tls<'_> {
    fn set(&mut self, (cert, key): (String, String)) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&key);
        let body: String = key
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("\n");
        let line = key.lines().nth(1).unwrap().to_string();
        self.leaks.extend([b64, body, line]);
        self.cert = cert;
        self.key = key;
    }

    fn run(&self, args: &[&str]) -> Run {
        let r = self
            .d
            .p
            .run_env(args, &[("TLS_CERT", &self.cert), ("TLS_KEY", &self.key)]);
        self.d.assert_no_secrets(&r, &self.leaks);
        r
    }

    fn plan(&self) -> Run {
        self.run(&["plan", "test", "--output", "json", "--detailed-exitcode"])
    }

    fn up(&self) -> Run {
        self.run(&["up", "test", "--output", "json"])
    }
}

#[test]
fn certificate_from_secrets_serves_https_and_redirects() {
    nginx_image();
    let mut d = Deploy::new("dktls");
    let https_port = free_port();
    d.extra_vars = format!("https_port = {https_port}\n");
    d.write_config();
    let text = std::fs::read_to_string(repo_root().join("playbooks/deploy.toml")).unwrap();
    assert_eq!(text.matches(STOP_FIRST).count(), 1, "update STOP_FIRST");
    // The playbook's last step checks the app over plain HTTP, which now redirects.
    let (text, _) = text
        .split_once("[[step]]\nname = \"app healthy\"")
        .expect("app healthy step");
    d.p.write("playbooks/deploy.toml", &text.replace(STOP_FIRST, WITH_TLS));
    let proxy = format!("{}-proxy", d.app);
    let certs = d.p.path("certs");
    let mut t = Tls {
        d: &d,
        cert: String::new(),
        key: String::new(),
        leaks: vec![],
    };
    t.set(make_cert(&certs.join("one")));

    // Fresh host: plan predicts exactly what up changes.
    let planned = t.plan();
    planned.expect_code(2);
    let first = t.up();
    first.expect_code(0);
    assert_eq!(
        first.steps_with("changed"),
        planned.steps_with("changed"),
        "{}",
        first.dump()
    );

    let ca1 = certs.join("one/cert.pem");
    let (ok, body) = curl_https(https_port, &ca1, &["-i"]);
    assert!(ok && body.contains("<title>hello</title>"), "{body}");
    assert!(
        body.to_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{body}"
    );
    let redirect = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .arg(format!("http://127.0.0.1:{}/x?y=1", d.http_port))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&redirect.stdout),
        format!("301 https://127.0.0.1:{https_port}/x?y=1")
    );
    assert_eq!(
        docker(&["exec", &proxy, "stat", "-c", "%a", "/etc/nginx/tls/key.pem"]).trim(),
        "600"
    );

    // A second up changes nothing.
    let again = t.up();
    again.expect_code(0);
    assert_eq!(again.changed(), 0, "{}", again.dump());

    // A new certificate: plan predicts it, up reloads the same proxy gracefully (-vv too).
    let proxy_id = container_id(&proxy).unwrap();
    t.set(make_cert(&certs.join("two")));
    let predicted = t.plan();
    predicted.expect_code(2);
    assert_eq!(
        predicted.steps_with("changed"),
        set(&["app"]),
        "{}",
        predicted.dump()
    );
    let rotate = t.run(&["up", "test", "-vv"]);
    rotate.expect_code(0);
    assert!(
        rotate.stdout.contains("reloaded with the new certificate"),
        "{}",
        rotate.dump()
    );
    // The step ends once the workers holding the old certificate are gone: right after it,
    // every answer is signed by the new one.
    assert!(
        rotate.stdout.contains("old nginx workers drained"),
        "{}",
        rotate.dump()
    );
    assert_eq!(
        container_id(&proxy).unwrap(),
        proxy_id,
        "the proxy was recreated"
    );
    let (ok, body) = curl_https(https_port, &certs.join("two/cert.pem"), &[]);
    assert!(ok && body.contains("<title>hello</title>"), "{body}");
    let (ok, _) = curl_https(https_port, &ca1, &[]);
    assert!(!ok, "the old certificate is still served");
    let last = t.up();
    last.expect_code(0);
    assert_eq!(last.changed(), 0, "{}", last.dump());
}
