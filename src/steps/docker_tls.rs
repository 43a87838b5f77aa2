//! HTTPS on the start-first front proxy (`proxy.tls`): a certificate and key from the
//! environment's secrets, served by nginx on `proxy.https_port`, with plain HTTP redirected
//! to HTTPS unless `redirect = false`, and HSTS when `hsts = true`.
//!
//! The PEM travels on the apply's stdin (never on a command line), lands in a 0700 temp dir on
//! the host and goes into the proxy with `docker cp` as a tar (key mode 0600). The probe prints
//! the sha256 of the proxy's certificate and key; the key's sha256 is masked like a secret (it
//! would confirm a guessed key offline). A changed certificate is a graceful `nginx -s reload`.

use super::PrepareError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where the proxy reads them.
const DIR: &str = "/etc/nginx/tls";

/// `proxy.tls = { … }`, as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// Name of the secret holding the certificate chain (PEM).
    pub cert_secret: Option<String>,
    /// Name of the secret holding the private key (PEM).
    pub key_secret: Option<String>,
    /// Plain HTTP on `proxy.port` answers 301 to HTTPS (default true).
    pub redirect: Option<bool>,
    /// Send `Strict-Transport-Security` over HTTPS (default false).
    pub hsts: Option<bool>,
}

/// PEM text that never shows in `Debug` output.
#[derive(Clone, Default)]
struct Pem(String);

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<pem>")
    }
}

/// The prepared TLS of a proxy.
#[derive(Debug, Clone)]
pub struct Tls {
    pub https_port: String,
    cert_secret: String,
    key_secret: String,
    redirect: bool,
    hsts: bool,
    cert: Pem,
    key: Pem,
    pub certsum: String,
    pub keysum: String,
}

impl Tls {
    /// `tls` and `https_port` go together.
    pub fn prepare(
        spec: Option<&TlsSpec>,
        https_port: Option<&str>,
    ) -> Result<Option<Tls>, String> {
        let (spec, port) = match (spec, https_port) {
            (None, None) => return Ok(None),
            (None, Some(_)) => {
                return Err("proxy.https_port needs proxy.tls = { cert_secret = \"…\", key_secret = \"…\" }".into());
            }
            (Some(_), None) => {
                return Err("proxy.tls needs proxy.https_port (\"8443\" or \"127.0.0.1:8443\"): the port HTTPS is served on".into());
            }
            (Some(s), Some(p)) => (s, p),
        };
        super::check_port("proxy.https_port", port)?;
        let (Some(cert), Some(key)) = (&spec.cert_secret, &spec.key_secret) else {
            return Err("proxy.tls needs cert_secret and key_secret: the names of the secrets holding the certificate and the key (PEM)".into());
        };
        Ok(Some(Tls {
            https_port: port.into(),
            cert_secret: cert.clone(),
            key_secret: key.clone(),
            redirect: spec.redirect.unwrap_or(true),
            hsts: spec.hsts.unwrap_or(false),
            cert: Pem::default(),
            key: Pem::default(),
            certsum: String::new(),
            keysum: String::new(),
        }))
    }

    /// Read the PEM from the secrets; the key's sha256 is masked from here on.
    pub fn load(&mut self, secrets: &crate::secrets::Secrets) -> Result<(), PrepareError> {
        let cert = secrets
            .require(&self.cert_secret)
            .map_err(PrepareError::Secret)?;
        let key = secrets
            .require(&self.key_secret)
            .map_err(PrepareError::Secret)?;
        if !cert.contains("-----BEGIN CERTIFICATE-----") {
            return Err(PrepareError::Invalid(format!(
                "secret {} (proxy.tls.cert_secret) is not a PEM certificate: it has no -----BEGIN CERTIFICATE----- line",
                self.cert_secret
            )));
        }
        if !(key.contains("-----BEGIN") && key.contains("PRIVATE KEY-----")) {
            return Err(PrepareError::Invalid(format!(
                "secret {} (proxy.tls.key_secret) is not a PEM private key",
                self.key_secret
            )));
        }
        let cert = with_newline(cert);
        let key = with_newline(key);
        self.certsum = hex::encode(Sha256::digest(cert.as_bytes()));
        self.keysum = hex::encode(Sha256::digest(key.as_bytes()));
        secrets.redactor().add(&self.keysum);
        self.cert = Pem(cert);
        self.key = Pem(key);
        Ok(())
    }

    /// What the apply reads on stdin: the certificate, then the key.
    pub fn stdin(&self) -> Vec<u8> {
        format!("{}{}", self.cert.0, self.key.0).into_bytes()
    }

    /// Probe lines (after `$p` is set): the sha256 of the proxy's certificate and key.
    pub fn probe() -> &'static str {
        concat!(
            "printf 'certsum=%s\\n' \"$(docker cp \"$p:/etc/nginx/tls/cert.pem\" - 2>/dev/null | tar -xOf - 2>/dev/null | sha256sum | cut -c1-64)\"\n",
            "printf 'keysum=%s\\n' \"$(docker cp \"$p:/etc/nginx/tls/key.pem\" - 2>/dev/null | tar -xOf - 2>/dev/null | sha256sum | cut -c1-64)\"\n",
        )
    }

    /// The apply's first lines: read the certificate and key from stdin into a 0700 temp dir
    /// (removed on exit), and `tls_put`, which copies them into the proxy.
    pub fn shell_fns(&self) -> String {
        format!(
            "tls_d=$(umask 077; mktemp -d); trap 'rm -rf \"$tls_d\"' EXIT\n\
             mkdir -m 700 \"$tls_d/tls\"\n\
             dd bs=1 count={n} of=\"$tls_d/tls/cert.pem\" 2>/dev/null\n\
             (umask 077; cat > \"$tls_d/tls/key.pem\")\n\
             chmod 644 \"$tls_d/tls/cert.pem\"; chmod 600 \"$tls_d/tls/key.pem\"\n\
             tls_changed=0\n\
             tls_put() {{ tar -C \"$tls_d\" -cf - tls | docker cp - \"$p:/etc/nginx/\"; }}\n",
            n = self.cert.0.len(),
        )
    }

    /// In a running proxy: copy in the certificate and key when they differ.
    pub const UPDATE_SH: &'static str = "for f in cert.pem key.pem; do\n\
         if [ \"$(docker cp \"$p:/etc/nginx/tls/$f\" - 2>/dev/null | tar -xOf - 2>/dev/null | sha256sum)\" != \"$(sha256sum < \"$tls_d/tls/$f\")\" ]; then tls_changed=1; fi\n\
         done\n\
         if [ \"$tls_changed\" = 1 ]; then tls_put; fi\n";

    /// An `elif` of the conf check: the conf is the same but the certificate changed, so
    /// nginx reloads gracefully (the old workers finish their requests with the old one).
    /// The old workers' pids are kept: the drain waits until they are gone, so when the
    /// step ends only workers holding the new certificate answer.
    pub const RELOAD_SH: &'static str = "elif [ \"$tls_changed\" = 1 ]; then\n\
         old_workers=$(workers)\n\
         if ! out=$(docker exec \"$p\" sh -c 'nginx -q -t && nginx -s reload' 2>&1); then fail_switch \"the proxy refused the new certificate: $out\"; fi\n\
         say \"$p reloaded with the new certificate\"\n";

    /// The HTTP server's `location /`: a redirect to HTTPS, or the app itself.
    pub fn http_location(&self, app: &str) -> String {
        if !self.redirect {
            return app.to_string();
        }
        let port = self.https_port.rsplit(':').next().unwrap_or("443");
        let suffix = if port == "443" {
            String::new()
        } else {
            format!(":{port}")
        };
        format!("\x20   location / {{ return 301 https://$host{suffix}$request_uri; }}\n")
    }

    /// The HTTPS server block routing to the app.
    pub fn server(&self, app: &str) -> String {
        let hsts = if self.hsts {
            "\x20   add_header Strict-Transport-Security \"max-age=31536000\" always;\n"
        } else {
            ""
        };
        format!(
            "\x20 server {{\n\
             \x20   listen 443 ssl;\n\
             \x20   ssl_certificate {DIR}/cert.pem;\n\
             \x20   ssl_certificate_key {DIR}/key.pem;\n\
             {hsts}{app}\
             \x20 }}\n"
        )
    }
}

fn with_newline(mut s: String) -> String {
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TlsSpec {
        TlsSpec {
            cert_secret: Some("TLS_CERT".into()),
            key_secret: Some("TLS_KEY".into()),
            redirect: None,
            hsts: Some(true),
        }
    }

    #[test]
    fn tls_and_https_port_go_together() {
        assert!(Tls::prepare(None, None).unwrap().is_none());
        assert!(
            Tls::prepare(None, Some("8443"))
                .unwrap_err()
                .contains("needs proxy.tls")
        );
        assert!(
            Tls::prepare(Some(&spec()), None)
                .unwrap_err()
                .contains("https_port")
        );
        let no_key = TlsSpec {
            key_secret: None,
            ..spec()
        };
        assert!(
            Tls::prepare(Some(&no_key), Some("8443"))
                .unwrap_err()
                .contains("key_secret")
        );
        assert!(
            Tls::prepare(Some(&spec()), Some("84 43"))
                .unwrap_err()
                .contains("proxy.https_port")
        );
    }

    #[test]
    fn conf_redirects_to_the_https_port_and_sends_hsts() {
        let t = Tls::prepare(Some(&spec()), Some("127.0.0.1:8443"))
            .unwrap()
            .unwrap();
        assert_eq!(
            t.http_location("APP"),
            "\x20   location / { return 301 https://$host:8443$request_uri; }\n"
        );
        let s = t.server("APP");
        assert!(
            s.contains("listen 443 ssl;") && s.contains("Strict-Transport-Security"),
            "{s}"
        );
        let plain = TlsSpec {
            redirect: Some(false),
            hsts: None,
            ..spec()
        };
        let t = Tls::prepare(Some(&plain), Some("443")).unwrap().unwrap();
        assert_eq!(t.http_location("APP"), "APP");
        assert!(!t.server("APP").contains("Strict"));
    }
}
