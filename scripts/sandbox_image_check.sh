#!/usr/bin/env bash
# Run the built sandbox image the way its pod runs (helm/seedcoder/templates/sandbox.yaml), and check it:
# the image's root file system becomes the root of new mount and pid namespaces (pivot_root, as a container
# runtime does; a chroot would make the kernel refuse user namespaces), with a fresh, unmasked /proc (the pod's
# procMount: Unmasked), a tmpfs /tmp, root with only the capabilities the chart grants, and no_new_privs (the pod's
# allowPrivilegeEscalation: false). Inside, the isolation probe must pass and a program in every language must run.
# Usage: scripts/sandbox_image_check.sh        (as root, after `scripts/images.sh build sandbox`)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VERSION=$(sed -n -E 's/^appVersion: *"?([^"]+)"?$/\1/p' "$REPO/helm/seedcoder/Chart.yaml")
IMAGE=localhost/seedcoder/sandbox:$VERSION
# The capabilities the chart grants, read from the template (the test of the chart checks the same list).
CAPS=$(sed -n -E 's/^ *add: \[(.*)\]$/\1/p' "$REPO/helm/seedcoder/templates/sandbox.yaml" | tr -d ' ' | tr '[:upper:]' '[:lower:]')
[[ -n $CAPS ]] || { echo "sandbox_image_check: no capability list in templates/sandbox.yaml" >&2; exit 2; }
BOUNDING="-all,+${CAPS//,/,+}"
[[ $(id -u) -eq 0 ]] || { echo "sandbox_image_check: run as root (as the pod does)" >&2; exit 2; }

ctr=$("$REPO/scripts/images.sh" buildah from "$IMAGE")
trap '"$REPO/scripts/images.sh" buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
root=$("$REPO/scripts/images.sh" buildah mount "$ctr")
mkdir -p "$root/probe"
printf '#include <iostream>\nint main(){int a,b;std::cin>>a>>b;std::cout<<a+b<<"\\n";}\n' >"$root/probe/main.cpp"
printf 'import java.util.Scanner;\npublic class Main { public static void main(String[] x){ Scanner s = new Scanner(System.in); System.out.println(s.nextInt() + s.nextInt()); } }\n' >"$root/probe/Main.java"
printf 'const [a, b] = require("fs").readFileSync(0, "utf8").trim().split(/\\s+/).map(Number);\nconsole.log(a + b);\n' >"$root/probe/main.js"
printf 'package main\nimport "fmt"\nfunc main(){ var a, b int; fmt.Scan(&a, &b); fmt.Println(a + b) }\n' >"$root/probe/main.go"
printf 'a, b = map(int, input().split())\nprint(a + b)\n' >"$root/probe/main.py"
echo "2 3" >"$root/probe/stdin"

pod() {  # pod CMD...: CMD inside the image, as its pod runs it
  unshare --mount --pid --fork sh -s -- "$@" <<EOS
set -e
mount --make-rprivate /
mount --bind "$root" "$root"
cd "$root"
mount -t proc proc proc
mount --rbind /dev dev
mount -t tmpfs -o size=1g tmpfs tmp
mkdir -p .oldroot
pivot_root . .oldroot
cd /
umount -l /.oldroot
exec /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin PYTHONPATH=/opt/seedcoder SEEDCODER_PROFILE=k8s HOME=/root \
  setpriv --no-new-privs --bounding-set=$BOUNDING --inh-caps=-all "\$@"
EOS
}

echo "sandbox_image_check: $IMAGE, capabilities $CAPS"
pod python -m training.sandbox check
failed=0
for pair in main.cpp:cpp Main.java:java main.js:javascript main.go:go main.py:python; do
  file=${pair%%:*} language=${pair#*:}
  out=$(pod python -m training.sandbox run "/probe/$file" --language "$language" --stdin /probe/stdin 2>&1) || true
  if grep -q '"stdout": "5\\n"' <<<"$out" && grep -q '"isolation": "full"' <<<"$out"; then
    echo "sandbox_image_check: $language ok"
  else
    echo "sandbox_image_check: $language FAILED:"; tail -n 20 <<<"$out"; failed=1
  fi
done
exit $failed
