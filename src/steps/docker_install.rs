//! `docker_install`: Docker from the distribution's packages (apt `docker.io` on Debian/Ubuntu,
//! dnf/yum `docker` on Amazon Linux/RHEL; override with `packages`), the daemon started
//! (systemctl where systemd runs, else dockerd in the background), and the login user in the
//! `docker` group when it is not root. An existing working install is reported `ok`.

use super::{Action, Decision, Kind, PrepareCx, PrepareError, Probe, StepKind, tail};
use crate::transport::script::quote;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Package names to install instead of the distribution's default.
    pub packages: Option<Vec<String>>,
    /// User to add to the `docker` group (default: the login user, unless root).
    pub user: Option<String>,
}

impl Kind for Spec {
    const NAME: &'static str = "docker_install";

    fn target(&self) -> String {
        String::new()
    }

    fn prepare(&self, cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        let user = cx.login_user();
        Ok(Box::new(Desired::prepare(self, user.as_deref())?))
    }
}

#[derive(Debug, Clone)]
pub struct Desired {
    packages: Option<Vec<String>>,
    user: Option<String>,
}

impl Desired {
    pub fn prepare(spec: &Spec, login_user: Option<&str>) -> Result<Desired, String> {
        if let Some(p) = &spec.packages {
            super::packages::Desired::prepare(&super::packages::Spec { names: p.clone() })?;
        }
        let user = spec
            .user
            .clone()
            .or_else(|| login_user.map(str::to_string))
            .filter(|u| u != "root");
        Ok(Desired {
            packages: spec.packages.clone(),
            user,
        })
    }

    fn user_check(&self) -> String {
        match &self.user {
            Some(u) => format!(
                "if id {u} >/dev/null 2>&1 && id -nG {u} | tr ' ' '\\n' | grep -qx docker; then echo ingroup=1; fi\n",
                u = quote(u)
            ),
            None => "echo ingroup=1\n".into(),
        }
    }
}

impl StepKind for Desired {
    fn probe(&self, _check: bool) -> Option<String> {
        Some(format!(
            "if command -v docker >/dev/null 2>&1; then echo installed=1; fi\n\
             if docker info >/dev/null 2>&1 || {{ [ \"$(id -u)\" != 0 ] && sudo -n docker info >/dev/null 2>&1; }}; then echo running=1; fi\n\
             if [ -d /run/systemd/system ]; then echo systemd=1; fi\n{}",
            self.user_check()
        ))
    }

    fn decide(&self, observed: Option<&Probe>) -> Decision {
        let p = observed.cloned().unwrap_or_default();
        let mut todo = Vec::new();
        if p.field("installed").is_none() {
            todo.push("install docker".to_string());
        }
        if p.field("running").is_none() {
            todo.push(
                if p.field("systemd").is_some() {
                    "enable and start docker (systemd)"
                } else {
                    "start dockerd"
                }
                .to_string(),
            );
        }
        if p.field("ingroup").is_none() {
            todo.push(format!(
                "add {} to the docker group",
                self.user.as_deref().unwrap_or("?")
            ));
        }
        if todo.is_empty() {
            Decision::Ok("docker installed and running".into())
        } else {
            Decision::change(todo.join(", "))
        }
    }

    fn apply(&self) -> Action {
        let install = match &self.packages {
            Some(names) => super::packages::Desired::prepare(&super::packages::Spec { names: names.clone() })
                .map(|d| d.apply().script)
                .unwrap_or_default(),
            None => r#"ID=; ID_LIKE=
if [ -r /etc/os-release ]; then . /etc/os-release; fi
case " $ID $ID_LIKE " in
  *" debian "*|*" ubuntu "*) export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null; apt-get install -y -q docker.io ;;
  *" rhel "*|*" fedora "*|*" centos "*|*" amzn "*) if command -v dnf >/dev/null 2>&1; then dnf install -y docker; else yum install -y docker; fi ;;
  *) echo "cannot install docker on this OS ($ID); set docker_install.packages" >&2; exit 1 ;;
esac
"#
            .to_string(),
        };
        let group = match &self.user {
            Some(u) => format!(
                "if ! id -nG {u} | tr ' ' '\\n' | grep -qx docker; then usermod -aG docker {u}; fi\n",
                u = quote(u)
            ),
            None => String::new(),
        };
        let root = format!(
            "set -e\n\
             if ! command -v docker >/dev/null 2>&1; then\n( {install}\n)\nfi\n\
             if ! docker info >/dev/null 2>&1; then\n\
               if [ -d /run/systemd/system ]; then systemctl enable --now docker\n\
               else nohup dockerd >/var/log/dockerd.log 2>&1 </dev/null &\n\
               fi\n\
               i=0; until docker info >/dev/null 2>&1; do i=$((i+1)); [ $i -le 60 ] || {{ echo 'docker did not start within 30s:' >&2; tail -n 20 /var/log/dockerd.log >&2 2>/dev/null; exit 1; }}; sleep 0.5; done\n\
             fi\n{group}"
        );
        Action::script(format!(
            "set -e\n{AS_ROOT}as_root {}\n{}",
            quote(&root),
            self.new_group_check()
        ))
    }

    fn reconnect_after(&self, applied: &crate::transport::ExecOutput) -> bool {
        applied.stdout_lossy().lines().any(|l| l == NEW_GROUP)
    }

    fn may_reconnect(&self) -> bool {
        true
    }
}

/// Installing needs root: a non-root login goes through `sudo -n` for it (as get.docker.com
/// does), so the deploy user's own steps can run without `ssh.become`. Never prompts.
const AS_ROOT: &str = r#"as_root() {
  if [ "$(id -u)" = 0 ]; then /bin/sh -c "$1"
  elif sudo -n true 2>/dev/null; then sudo -n /bin/sh -c "$1"
  else echo "docker_install needs root: log in as root, set ssh.become = true, or let this user run sudo without a password" >&2; exit 1
  fi
}
"#;

/// Printed when the session's own user was just added to `docker`: its groups were fixed at
/// login, so the runner logs in again before the next step (`reconnect_after`).
const NEW_GROUP: &str = "docker_group=new";

impl Desired {
    /// The session runs as the user it added, and its groups (fixed at login, `id -nG`
    /// without a name) lack the group `/etc/group` now gives it.
    fn new_group_check(&self) -> String {
        match &self.user {
            Some(u) => format!(
                "if [ \"$(id -un)\" = {u} ] && ! id -nG | tr ' ' '\\n' | grep -qx docker; then echo {NEW_GROUP}; fi\n",
                u = quote(u)
            ),
            None => String::new(),
        }
    }
}

/// Shared by the docker kinds: a probe line that tells whether docker answers.
pub fn docker_ok_probe() -> &'static str {
    "if docker info >/dev/null 2>&1; then echo docker=ok; fi\n"
}

/// When docker does not answer, the message the docker kinds decide with.
pub fn docker_missing(p: &Probe, what: String) -> Option<Decision> {
    (p.field("docker") != Some("ok")).then(|| {
        Decision::change(format!(
            "{what} (docker is not available yet{})",
            if p.out.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", tail(&p.out, 1))
            }
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_what_is_missing() {
        let d = Desired::prepare(
            &Spec {
                packages: None,
                user: None,
            },
            Some("admin"),
        )
        .unwrap();
        let fresh = Probe::with_out("systemd=1\n");
        assert_eq!(
            d.decide(Some(&fresh)),
            Decision::change(
                "install docker, enable and start docker (systemd), add admin to the docker group"
            )
        );
        let done = Probe::with_out("installed=1\nrunning=1\ningroup=1\n");
        assert!(matches!(d.decide(Some(&done)), Decision::Ok(_)));
    }

    /// The check runs for real: this test's own process is the session.
    fn new_group_line(user: &str) -> String {
        let d = Desired {
            packages: None,
            user: Some(user.into()),
        };
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(d.new_group_check())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn asks_for_a_new_login_only_when_the_session_user_lacks_the_group() {
        let me = std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap();
        let me = String::from_utf8_lossy(&me.stdout).trim().to_string();
        let has_docker = std::process::Command::new("/bin/sh")
            .args(["-c", "id -nG | tr ' ' '\\n' | grep -qx docker"])
            .status()
            .unwrap()
            .success();
        let expect = if has_docker { "" } else { "docker_group=new\n" };
        assert_eq!(new_group_line(&me), expect);
        assert_eq!(new_group_line("someone-else"), "");
        let applied = |out: &str| crate::transport::ExecOutput {
            stdout: out.as_bytes().to_vec(),
            ..Default::default()
        };
        let d = Desired::prepare(
            &Spec {
                packages: None,
                user: None,
            },
            Some("deploy"),
        )
        .unwrap();
        assert!(d.reconnect_after(&applied("x\ndocker_group=new\n")));
        assert!(!d.reconnect_after(&applied("docker_group=newer\n")));
    }

    #[test]
    fn installs_through_sudo_when_not_root() {
        let d = Desired::prepare(
            &Spec {
                packages: None,
                user: None,
            },
            Some("deploy"),
        )
        .unwrap();
        let script = d.apply().script;
        assert!(
            script.starts_with(&format!("set -e\n{AS_ROOT}")),
            "{script}"
        );
        assert!(script.contains("\nas_root '"), "{script}");
        assert!(script.contains("usermod -aG docker deploy"), "{script}");
    }

    #[test]
    fn a_failed_root_part_fails_the_change() {
        let script = format!("set -e\n{AS_ROOT}as_root 'exit 3'\necho after\n");
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert!(!String::from_utf8_lossy(&out.stdout).contains("after"));
    }

    #[test]
    fn root_needs_no_group() {
        let d = Desired::prepare(
            &Spec {
                packages: None,
                user: None,
            },
            Some("root"),
        )
        .unwrap();
        assert!(d.probe(false).unwrap().contains("echo ingroup=1"));
        assert!(!d.apply().script.contains("usermod"));
    }
}
