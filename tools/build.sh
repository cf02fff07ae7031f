#!/usr/bin/env bash
# Builds the solution and publishes the executables side by side into build/bin/,
# where scripts and end-to-end tests call them by QEMU's names.
set -euo pipefail
cd "$(dirname "$0")/.."

config="${CONFIGURATION:-Release}"
dotnet build Colo.sln -c "$config" -nologo -v quiet
for project in Emulator/QemuSystem Emulator/QemuImg Emulator/QemuIo Emulator/QemuNbd; do
    dotnet publish "$project" -c "$config" -o build/bin -nologo -v quiet --no-build
done
echo "built: $(ls build/bin | grep -E '^qemu-[a-z0-9_-]+$' | tr '\n' ' ')" >&2
