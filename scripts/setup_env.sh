#!/usr/bin/env bash
# Shared set-up for the README's two commands: system packages (when root with apt), the virtualenv and
# the package with the requested extras. Usage: scripts/setup_env.sh [EXTRAS]   (e.g. "test,postgres")
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"

# poppler-utils: pdftoppm rasterises scanned PDFs of sheets for the reader
apt_packages=(fonts-dejavu-core poppler-utils)
if [ -n "$extras" ]; then
  # the report's PDF: LibreOffice headless, with a Times New Roman substitute that has every Vietnamese letter
  # (fonts-liberation 1.07 lacks ạ ậ ế ệ ộ ợ ự ỹ; fonts-liberation2 has them); R and its survey package for the
  # analysis tests that compare with R live and for scripts/reproduce (tests/results/test_reproduce.py)
  apt_packages+=(postgresql chromium nginx default-jre-headless libreoffice-writer-nogui fonts-liberation2
                 r-base-core r-cran-survey)
fi
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "Note: missing system packages (${missing[*]}); the tests that need them will be skipped." >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
.venv/bin/pip install -q --disable-pip-version-check -e "$spec" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import survey_service, analysis" # fails loudly if the install did not work
