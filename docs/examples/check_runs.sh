#!/bin/bash
# After a sharded `latentdrive generate` batch: which scenarios have no finished run folder?
# A run is finished when OUT/<scenario name>/metadata.json exists (`generate` writes it last);
# a folder without it is an interrupted run, no folder at all is a run that never started
# (a failed or cancelled shard). Explained in docs/scale-out.md.
#
# Usage: docs/examples/check_runs.sh INPUTS OUT [REDO_LIST]
#   INPUTS     what the shards were given (a folder of *.ron or a .txt list)
#   OUT        their --out
#   REDO_LIST  where to write the scenario files to rerun, one absolute path a line, as a
#              .txt list that `generate` reads [default: redo.txt]
# Environment: LATENTDRIVE, the binary [default: latentdrive on PATH].
# Exit code: 0 every run finished, 1 some to redo (listed), 2 bad input.
#
# Then rerun those, with the batch's own `generate` options; --force replaces the interrupted
# folders:
#   latentdrive generate redo.txt --out OUT --force [the batch's options]
# or spread them over the cluster again (docs/examples/slurm_generate.sbatch):
#   sbatch --array=0-3 --export=ALL,LD_INPUTS="$PWD/redo.txt",LD_FORCE=1 slurm_generate.sbatch
set -euo pipefail

if (($# < 2 || $# > 3)); then
    sed -n '7,13p' "$0" >&2
    exit 2
fi
inputs=$1
out=$2
redo=${3:-redo.txt}
bin=${LATENTDRIVE:-latentdrive}

# "ok    FILE (NAME, N boxes)" per valid file, in the order the shards saw them. The binary's own
# parser gives the names; it also fails (exit 2) if any file is invalid or two share a name.
listing=$("$bin" validate "$inputs")
total=0
todo=0
: > "$redo"
while IFS=$'\t' read -r name file; do
    total=$((total + 1))
    [[ -f $out/$name/metadata.json ]] && continue
    if [[ -d $out/$name ]]; then
        echo "incomplete: $out/$name"
    else
        echo "missing:    $out/$name"
    fi
    realpath "$file" >> "$redo"
    todo=$((todo + 1))
done < <(sed -n 's/^ok    \(.*\) (\([^,]*\), [0-9]* boxes)$/\2\t\1/p' <<< "$listing")

if ((todo == 0)); then
    echo "all ${total} runs finished"
    exit 0
fi
echo "$((total - todo)) of ${total} runs finished; ${todo} to redo, listed in ${redo}"
exit 1
