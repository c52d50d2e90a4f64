# bash completion for knarr, generated from the command table by `npm run gen`; do not edit
_knarr() {
  local cur prev path="" i w
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  local groups=' [] [pool] [etcd] [dot] [dot/remote] [job] [service] [host] [cluster] [image] [op] '
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${COMP_WORDS[i]}"
    case "$w" in
      -o|--output|--config|--state-dir|--etcd|--fleet) ((i++)); continue ;;
      -*) continue ;;
    esac
    # Words after a leaf command are its arguments, not more of the path.
    [[ $groups == *" [$path] "* ]] || break
    path="${path:+$path/}$w"
  done
  case "$prev" in
    -o|--output) COMPREPLY=($(compgen -W 'table json yaml' -- "$cur")); return ;;
    --config) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --state-dir) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --etcd) return ;;
    --fleet) return ;;
    --name) return ;;
    --driver) COMPREPLY=($(compgen -W 'zfs btrfs lvm dir' -- "$cur")); return ;;
    --device) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --loop-file) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --size) return ;;
    --path) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --mountpoint) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --pool) return ;;
    --client-port) return ;;
    --peer-port) return ;;
    -m|--message) return ;;
    --meta) return ;;
    --author) return ;;
    --branch) return ;;
    --commit) return ;;
    --hard) return ;;
    --as) return ;;
    --base) return ;;
    --record) return ;;
    -f|--file) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    -e|--env) return ;;
    --network) return ;;
    --host) return ;;
    --tag) return ;;
    -p|--port) return ;;
    --volume) return ;;
    --link) return ;;
    --restart) return ;;
    --cpu) return ;;
    --memory) return ;;
    --strategy) COMPREPLY=($(compgen -W 'spread binpack' -- "$cur")); return ;;
    --image) return ;;
    --user) return ;;
    --cpus) return ;;
    --authorized-keys) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --timeout) return ;;
    --older-than) return ;;
    --kind) COMPREPLY=($(compgen -W 'job op host dot cluster' -- "$cur")); return ;;
    --since) return ;;
    -n|--tail) return ;;
    --tags) return ;;
    --listen) return ;;
    --ttl) return ;;
    --token-file) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --tls-cert) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --tls-key) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --advertise) return ;;
    --mode) COMPREPLY=($(compgen -W 'recovery new' -- "$cur")); return ;;
    --share) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --drain-timeout) return ;;
    --storage-device) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --zpool-device) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --dot) return ;;
    --seed) return ;;
  esac
  local globals='--json --no-json -o --output --dry-run --no-dry-run -v --verbose --no-verbose -q --quiet --no-quiet --wait --no-wait --config --state-dir --etcd --fleet'
  case "$path" in
    '') COMPREPLY=($(compgen -W 'pool etcd dot job service host cluster image op events daemon onboot doctor completion'" $globals" -- "$cur")) ;;
    'pool') COMPREPLY=($(compgen -W 'init status list destroy'" $globals" -- "$cur")) ;;
    'pool/init') COMPREPLY=($(compgen -W '--name --driver --device --loop-file --size --path --mountpoint --force'" $globals" -- "$cur")) ;;
    'pool/status') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'pool/list') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'pool/destroy') COMPREPLY=($(compgen -W '--yes --force'" $globals" -- "$cur")) ;;
    'etcd') COMPREPLY=($(compgen -W 'up down status backup restore'" $globals" -- "$cur")) ;;
    'etcd/up') COMPREPLY=($(compgen -W '--pool --client-port --peer-port'" $globals" -- "$cur")) ;;
    'etcd/down') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'etcd/status') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'etcd/backup') COMPREPLY=($(compgen -W '--force'" $globals" -- "$cur")) ;;
    'etcd/restore') COMPREPLY=($(compgen -W '--yes --pool --client-port --peer-port'" $globals" -- "$cur")) ;;
    'dot') COMPREPLY=($(compgen -W 'init list show commit log branch checkout reset clone mount unmount fsck push pull remote manifest send receive rm'" $globals" -- "$cur")) ;;
    'dot/init') COMPREPLY=($(compgen -W '--pool'" $globals" -- "$cur")) ;;
    'dot/list') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'dot/show') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'dot/commit') COMPREPLY=($(compgen -W '-m --message --meta --author'" $globals" -- "$cur")) ;;
    'dot/log') COMPREPLY=($(compgen -W '--branch'" $globals" -- "$cur")) ;;
    'dot/branch') COMPREPLY=($(compgen -W '--commit'" $globals" -- "$cur")) ;;
    'dot/checkout') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'dot/reset') COMPREPLY=($(compgen -W '--hard --force'" $globals" -- "$cur")) ;;
    'dot/clone') COMPREPLY=($(compgen -W '--commit'" $globals" -- "$cur")) ;;
    'dot/mount') COMPREPLY=($(compgen -W '--branch --force'" $globals" -- "$cur")) ;;
    'dot/unmount') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'dot/fsck') COMPREPLY=($(compgen -W '--repair'" $globals" -- "$cur")) ;;
    'dot/push') COMPREPLY=($(compgen -W '--branch'" $globals" -- "$cur")) ;;
    'dot/pull') COMPREPLY=($(compgen -W '--as --pool --stash-on-divergence'" $globals" -- "$cur")) ;;
    'dot/remote') COMPREPLY=($(compgen -W 'add rm list'" $globals" -- "$cur")) ;;
    'dot/remote/add') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'dot/remote/rm') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'dot/remote/list') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'dot/manifest') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'dot/send') COMPREPLY=($(compgen -W '--base'" $globals" -- "$cur")) ;;
    'dot/receive') COMPREPLY=($(compgen -W '--record --branch --base --pool'" $globals" -- "$cur")) ;;
    'dot/rm') COMPREPLY=($(compgen -W '--force'" $globals" -- "$cur")) ;;
    'job') COMPREPLY=($(compgen -W 'run plan list show logs stop rm restart history'" $globals" -- "$cur")) ;;
    'job/run') COMPREPLY=($(compgen -W '-i --interactive -f --file --name -e --env --network --host --tag -p --port --volume --link --restart --cpu --memory --fixed --static -d --detach'" $globals" -- "$cur")) ;;
    'job/plan') COMPREPLY=($(compgen -W '-f --file --name --host --tag -p --port --volume --cpu --memory --fixed --strategy'" $globals" -- "$cur")) ;;
    'job/list') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'job/show') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'job/logs') COMPREPLY=($(compgen -W '-f --follow'" $globals" -- "$cur")) ;;
    'job/stop') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'job/rm') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'job/restart') COMPREPLY=($(compgen -W '--all'" $globals" -- "$cur")) ;;
    'job/history') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'service') COMPREPLY=($(compgen -W 'list'" $globals" -- "$cur")) ;;
    'service/list') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'host') COMPREPLY=($(compgen -W 'list show drain tag leave'" $globals" -- "$cur")) ;;
    'host/list') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'host/show') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'host/drain') COMPREPLY=($(compgen -W '--undo'" $globals" -- "$cur")) ;;
    'host/tag') COMPREPLY=($(compgen -W '--remove'" $globals" -- "$cur")) ;;
    'host/leave') COMPREPLY=($(compgen -W '--force'" $globals" -- "$cur")) ;;
    'cluster') COMPREPLY=($(compgen -W 'create start stop delete scale list show exec'" $globals" -- "$cur")) ;;
    'cluster/create') COMPREPLY=($(compgen -W '--size --image --user --memory --cpus --pool --authorized-keys --detach'" $globals" -- "$cur")) ;;
    'cluster/start') COMPREPLY=($(compgen -W '--user --detach'" $globals" -- "$cur")) ;;
    'cluster/stop') COMPREPLY=($(compgen -W '--user --detach'" $globals" -- "$cur")) ;;
    'cluster/delete') COMPREPLY=($(compgen -W '--user --detach'" $globals" -- "$cur")) ;;
    'cluster/scale') COMPREPLY=($(compgen -W '--size --user --detach'" $globals" -- "$cur")) ;;
    'cluster/list') COMPREPLY=($(compgen -W '--user'" $globals" -- "$cur")) ;;
    'cluster/show') COMPREPLY=($(compgen -W '--user'" $globals" -- "$cur")) ;;
    'cluster/exec') COMPREPLY=($(compgen -W '-i --interactive --user'" $globals" -- "$cur")) ;;
    'image') COMPREPLY=($(compgen -W 'import list rm save'" $globals" -- "$cur")) ;;
    'image/import') COMPREPLY=($(compgen -W '--busybox --pool'" $globals" -- "$cur")) ;;
    'image/list') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'image/rm') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'image/save') COMPREPLY=($(compgen -W '--user --detach'" $globals" -- "$cur")) ;;
    'op') COMPREPLY=($(compgen -W 'list show wait cancel run gc'" $globals" -- "$cur")) ;;
    'op/list') COMPREPLY=($(compgen -W '--active'" $globals" -- "$cur")) ;;
    'op/show') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'op/wait') COMPREPLY=($(compgen -W '--timeout'" $globals" -- "$cur")) ;;
    'op/cancel') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'op/run') COMPREPLY=($(compgen -W ''" $globals" -- "$cur")) ;;
    'op/gc') COMPREPLY=($(compgen -W '--older-than'" $globals" -- "$cur")) ;;
    'events') COMPREPLY=($(compgen -W '-f --follow --host --kind --since -n --tail'" $globals" -- "$cur")) ;;
    'daemon') COMPREPLY=($(compgen -W '--name --tags --listen --ttl --token-file --tls-cert --tls-key --advertise --prune --no-prune --mode --share --drain-timeout'" $globals" -- "$cur")) ;;
    'onboot') COMPREPLY=($(compgen -W '--storage-device --zpool-device --driver --pool --dot --seed --mountpoint --daemon'" $globals" -- "$cur")) ;;
    'doctor') COMPREPLY=($(compgen -W '--fix'" $globals" -- "$cur")) ;;
    'completion') COMPREPLY=($(compgen -W 'bash zsh fish'" $globals" -- "$cur")) ;;
  esac
}
complete -F _knarr knarr
