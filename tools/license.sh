#!/usr/bin/env bash
# tools/license.sh FILE: print the SPDX id of the open-source licence in FILE (a module's
# LICENSE), or fail naming what it found. The test servers are part of what this project
# ships, so only open-source releases may be pinned: Nomad from v1.7.0 and Consul from
# v1.17.0 are under the Business Source License, which is not one, and fail here.
set -euo pipefail
file=${1:?usage: tools/license.sh LICENSE-FILE}
[ -r "$file" ] || { echo "tools/license.sh: no licence file at $file" >&2; exit 2; }

# The source-available licences come first: their texts name the open licence they change to
# later ("Change License: MPL 2.0"), which must not count.
if grep -qiE 'Business Source License|Server Side Public License|Elastic License|Commons Clause' "$file"; then
  echo "tools/license.sh: $file is not an open-source licence: $(grep -m1 -oiE 'Business Source License[^.]*|Server Side Public License|Elastic License[^.]*|Commons Clause' "$file")" >&2
  exit 1
fi
if grep -qiE 'Mozilla Public License,? version 2\.0' "$file"; then echo MPL-2.0
elif grep -qiE 'Permission is hereby granted, free of charge' "$file"; then echo MIT
elif grep -qiE 'Apache License' "$file" && grep -qiE 'Version 2\.0' "$file"; then echo Apache-2.0
elif grep -qiE 'Redistribution and use in source and binary forms' "$file"; then echo BSD
else
  echo "tools/license.sh: $file holds no licence this project knows as open source (MPL-2.0, MIT, Apache-2.0, BSD)" >&2
  exit 1
fi
