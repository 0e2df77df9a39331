#!/usr/bin/env bash
# Let `ray submit` run on this machine the way it runs on a cluster: through the cluster
# launcher's local provider, which reaches every node (the head included) over ssh.
#   bash .ci/ssh-localhost.sh VENV
# - installs openssh-server and rsync (the launcher syncs files with it) when absent (Debian's packages);
# - creates a key for this user (~/.ssh/dclm_ci_ed25519) and authorises it;
# - when nothing listens on 127.0.0.1:22, starts an sshd bound to 127.0.0.1 only, key login only;
# - makes `python` in such an ssh session the project's virtualenv VENV (on a cluster node,
#   `python` is the image's interpreter with the package installed; here it is the venv): a
#   pyenv version named dclm-ci pointing at VENV, selected by the sshd (SetEnv PYENV_VERSION).
# Everything it touches is for this user on this (CI) machine; it prints what it did.
set -euo pipefail
venv=${1:?usage: ssh-localhost.sh VENV}
need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v rsync >/dev/null || need+=(rsync)
if [ ${#need[@]} -gt 0 ]; then
  echo "ssh-localhost: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; }
fi
mkdir -p ~/.ssh && chmod 700 ~/.ssh
key=~/.ssh/dclm_ci_ed25519
[ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -C dclm-ci -f "$key"
touch ~/.ssh/authorized_keys && chmod 600 ~/.ssh/authorized_keys
grep -qF "$(cat "$key.pub")" ~/.ssh/authorized_keys || cat "$key.pub" >> ~/.ssh/authorized_keys
if [ -d ~/.pyenv/versions ]; then
  ln -sfn "$venv" ~/.pyenv/versions/dclm-ci
fi
if (exec 3<>/dev/tcp/127.0.0.1/22) 2>/dev/null; then
  echo "ssh-localhost: an sshd already listens on 127.0.0.1:22; using it"
else
  ssh-keygen -A >/dev/null
  mkdir -p /run/sshd
  dir=$(mktemp -d)
  cat > "$dir/sshd_config" <<CFG
Port 22
ListenAddress 127.0.0.1
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys
SetEnv PYENV_VERSION=dclm-ci
PidFile $dir/sshd.pid
CFG
  /usr/sbin/sshd -f "$dir/sshd_config"
  echo "ssh-localhost: started sshd on 127.0.0.1:22 (config $dir/sshd_config)"
fi
for _ in $(seq 50); do
  if ssh -i "$key" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
      127.0.0.1 true 2>/dev/null; then
    echo "ssh-localhost: key login to 127.0.0.1 works"
    exit 0
  fi
  sleep 0.2
done
echo "ssh-localhost: ssh 127.0.0.1 with $key does not work" >&2
exit 1
