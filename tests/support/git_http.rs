//! A real git server over HTTP behind basic auth: nginx (`auth_basic`, htpasswd from
//! apache2-utils) in front of `git http-backend` through fcgiwrap, on a free loopback port,
//! serving the bare repositories under one folder. Both daemons are stopped on drop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::{SOON, free_port, wait_until};

pub struct GitHttp {
    pub port: u16,
    nginx: Child,
    fcgi: Child,
    dir: tempfile::TempDir,
}

fn need(bin: &str, package: &str) {
    assert!(
        Path::new(bin).exists(),
        "{bin} is required for this test: install {package} (scripts/deps.sh does)"
    );
}

impl GitHttp {
    /// Serve the repositories under `root` to `user` with `password` only.
    pub fn start(root: &Path, user: &str, password: &str) -> GitHttp {
        need("/usr/sbin/nginx", "nginx-light");
        need("/usr/sbin/fcgiwrap", "fcgiwrap");
        need("/usr/bin/htpasswd", "apache2-utils");
        need("/usr/lib/git-core/git-http-backend", "git");
        let dir = tempfile::tempdir().expect("git http dir");
        let d = dir.path();
        let ok = Command::new("htpasswd")
            .args(["-b", "-c", "-B"])
            .arg(d.join("htpasswd"))
            .args([user, password])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("htpasswd")
            .success();
        assert!(ok, "htpasswd failed");
        let sock = d.join("fcgi.sock");
        let fcgi = Command::new("/usr/sbin/fcgiwrap")
            .arg("-s")
            .arg(format!("unix:{}", sock.display()))
            .stdin(Stdio::null())
            .spawn()
            .expect("start fcgiwrap");
        wait_until("fcgiwrap listens", SOON, || sock.exists());
        let port = free_port();
        std::fs::write(d.join("nginx.conf"), config(d, root, port)).unwrap();
        let nginx = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .arg("-e")
            .arg(d.join("error.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start nginx");
        let server = GitHttp {
            port,
            nginx,
            fcgi,
            dir,
        };
        wait_until("nginx listens", SOON, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        server
    }

    /// The URL of repository `name` (a folder under the served root).
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    /// nginx's access log: who asked for what, with which status.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    pub fn error_log(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }
}

/// Runs in the foreground as root (the temp folder is root's only), every path its own.
fn config(d: &Path, root: &Path, port: u16) -> String {
    let d = d.display();
    format!(
        "daemon off;\nmaster_process off;\nuser root;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  fastcgi_temp_path {d}/fastcgi;\n\
         proxy_temp_path {d}/proxy;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      auth_basic \"git\";\n      auth_basic_user_file {d}/htpasswd;\n\
         include /etc/nginx/fastcgi_params;\n      fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;\n\
         fastcgi_param GIT_PROJECT_ROOT {root};\n      fastcgi_param GIT_HTTP_EXPORT_ALL \"\";\n\
         fastcgi_param REMOTE_USER $remote_user;\n      fastcgi_param PATH_INFO $uri;\n      fastcgi_pass unix:{d}/fcgi.sock;\n    }}\n  }}\n}}\n",
        root = root.display()
    )
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        for child in [&mut self.nginx, &mut self.fcgi] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
