# bash completion for knarr, generated from the command table by `npm run gen`; do not edit
# Names (dots, pools, jobs...) come from `knarr __complete KIND`, which prints nothing when it cannot answer quickly.
_knarr_names() {
  local out
  out="$(command knarr "${fwd[@]}" --no-json -o table __complete "$@" 2>/dev/null)" || return 0
  COMPREPLY=($(compgen -W "$out" -- "$cur"))
  # bash replaces only what follows the last ":" of the word (an image tag): offer just that part.
  [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]] && COMPREPLY=("${COMPREPLY[@]#"${cur%"${cur##*:}"}"}")
  return 0
}
_knarr_value() {
  case "$1" in
    none | '') ;;
    path) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")) ;;
    c:*) local IFS=$', \t\n'; COMPREPLY=($(compgen -W "${1#c:}" -- "$cur")) ;;
    branch | node | member) [[ -n ${pos[0]} ]] && _knarr_names "$1" "${pos[0]}" ;;
    *) _knarr_names "$1" ;;
  esac
}
# Sets kids (a group's subcommands), or args, opts and vals (a leaf's arguments, options and value-taking options).
_knarr_node() {
  kids="" args="" opts="" vals=" "
  case "$1" in
    '') kids='pool etcd dot hub job ps service host cluster env image op events daemon onboot doctor completion' ;;
    'pool') kids='init status list ls destroy rm' ;;
    'etcd') kids='up down status join members remove token backup restore compact defrag' ;;
    'dot') kids='init list ls show status diff commit log branch checkout reset clone mount unmount fsck push pull remote manifest send receive rm' ;;
    'dot/remote') kids='add rm list ls' ;;
    'hub') kids='token list ls gc' ;;
    'hub/token') kids='create list ls revoke' ;;
    'job') kids='run plan list ls ps show logs stop rm restart history' ;;
    'service') kids='list ls' ;;
    'host') kids='list ls show drain tag leave evacuate restore' ;;
    'cluster') kids='create plan start stop delete rm suspend resume reboot update clone migrate scale list ls show exec' ;;
    'env') kids='create add remove rm start stop suspend resume destroy list ls show events' ;;
    'image') kids='import list ls rm save' ;;
    'op') kids='list ls show wait cancel run gc' ;;
    'pool/init') opts='--name --driver --device --loop-file --size --path --mountpoint --force'; vals=' --name=none --driver=c:zfs,btrfs,lvm,dir --device=path --loop-file=path --size=none --path=path --mountpoint=path ' ;;
    'pool/status') args='pool' ;;
    'pool/destroy' | 'pool/rm') args='pool'; opts='--yes --force' ;;
    'etcd/up') opts='--pool --client-port --peer-port --advertise --name'; vals=' --pool=pool --client-port=none --peer-port=none --advertise=none --name=none ' ;;
    'etcd/join') args='none'; opts='--token --advertise --name --pool --client-port --peer-port'; vals=' --token=none --advertise=none --name=none --pool=pool --client-port=none --peer-port=none ' ;;
    'etcd/remove') args='member'; opts='--force' ;;
    'etcd/backup') args='path'; opts='--force' ;;
    'etcd/restore') args='path'; opts='--yes --pool --client-port --peer-port'; vals=' --pool=pool --client-port=none --peer-port=none ' ;;
    'etcd/defrag') opts='--disarm' ;;
    'dot/init') args='dot'; opts='--pool'; vals=' --pool=pool ' ;;
    'dot/show') args='dot' ;;
    'dot/status') args='dot' ;;
    'dot/diff') args='dot none none' ;;
    'dot/commit') args='dot'; opts='-m --message --meta --author'; vals=' -m=none --message=none --meta=none --author=none ' ;;
    'dot/log') args='dot'; opts='--branch'; vals=' --branch=branch ' ;;
    'dot/branch') args='dot none'; opts='--commit'; vals=' --commit=none ' ;;
    'dot/checkout') args='dot branch'; opts='--force' ;;
    'dot/reset') args='dot'; opts='--hard --force'; vals=' --hard=none ' ;;
    'dot/clone') args='dot none'; opts='--commit'; vals=' --commit=none ' ;;
    'dot/mount') args='dot path'; opts='--branch --force'; vals=' --branch=branch ' ;;
    'dot/unmount') args='dot' ;;
    'dot/fsck') opts='--repair' ;;
    'dot/push') args='dot remote'; opts='--branch --private'; vals=' --branch=branch ' ;;
    'dot/pull') args='none'; opts='--as --pool --stash-on-divergence'; vals=' --as=none --pool=pool ' ;;
    'dot/remote/add') args='none none'; opts='--token-file --ca-file'; vals=' --token-file=path --ca-file=path ' ;;
    'dot/remote/rm') args='remote' ;;
    'dot/manifest') args='dot' ;;
    'dot/send') args='dot none'; opts='--base --sealed'; vals=' --base=none ' ;;
    'dot/receive') args='dot'; opts='--record --branch --base --sealed --pool'; vals=' --record=none --branch=branch --base=none --pool=pool ' ;;
    'dot/rm') args='dot'; opts='--force' ;;
    'hub/token/create') args='none'; opts='--read --write --hub'; vals=' --hub=path ' ;;
    'hub/token/list' | 'hub/token/ls') opts='--hub'; vals=' --hub=path ' ;;
    'hub/token/revoke') args='none'; opts='--hub'; vals=' --hub=path ' ;;
    'hub/list' | 'hub/ls') args='none'; opts='--hub --remote --token-file --ca-file'; vals=' --hub=path --remote=remote --token-file=path --ca-file=path ' ;;
    'hub/gc') opts='--older-than --hub'; vals=' --older-than=none --hub=path ' ;;
    'job/run') args='docker-image none...'; opts='-i --interactive -f --file --name -e --env --network --host --tag -p --port --volume --link --restart --cpu --memory --fixed --static -d --detach'; vals=' -f=path --file=path --name=none -e=env --env=env --network=none --host=host --tag=none -p=none --port=none --volume=none --link=none --restart=none --cpu=none --memory=none ' ;;
    'job/plan') args='docker-image none...'; opts='-i --interactive -f --file --name -e --env --network --host --tag -p --port --volume --link --restart --cpu --memory --fixed --static -d --detach --strategy'; vals=' -f=path --file=path --name=none -e=env --env=env --network=none --host=host --tag=none -p=none --port=none --volume=none --link=none --restart=none --cpu=none --memory=none --strategy=c:spread,binpack ' ;;
    'job/show') args='job' ;;
    'job/logs') args='job'; opts='-f --follow --tail --since --timestamps'; vals=' --tail=none --since=none ' ;;
    'job/stop') args='job' ;;
    'job/rm') args='job' ;;
    'job/restart') args='job...'; opts='--all' ;;
    'job/history') args='job' ;;
    'host/show') args='host' ;;
    'host/drain') args='host'; opts='--undo' ;;
    'host/tag') args='host none...'; opts='--remove' ;;
    'host/leave') args='host'; opts='--force' ;;
    'host/evacuate') args='host'; opts='--detach' ;;
    'host/restore') args='host' ;;
    'cluster/create') args='none'; opts='--size --image --user --memory --cpus --pool --authorized-keys --spread --pack --host --tag --detach'; vals=' --size=none --image=image --user=none --memory=none --cpus=none --pool=pool --authorized-keys=path --host=host --tag=none ' ;;
    'cluster/plan') args='none'; opts='--size --spread --pack --host --tag --memory --cpus --user --per-node'; vals=' --size=none --host=host --tag=none --memory=none --cpus=none --user=none ' ;;
    'cluster/start') args='cluster'; opts='--user --detach'; vals=' --user=none ' ;;
    'cluster/stop') args='cluster'; opts='--user --detach'; vals=' --user=none ' ;;
    'cluster/delete' | 'cluster/rm') args='cluster'; opts='--user --detach'; vals=' --user=none ' ;;
    'cluster/suspend') args='cluster node'; opts='--user --detach'; vals=' --user=none ' ;;
    'cluster/resume') args='cluster node'; opts='--user --detach'; vals=' --user=none ' ;;
    'cluster/reboot') args='cluster node'; opts='--user --detach'; vals=' --user=none ' ;;
    'cluster/update') args='cluster node'; opts='--memory --cpus --user --detach'; vals=' --memory=none --cpus=none --user=none ' ;;
    'cluster/clone') args='cluster none'; opts='--user --detach'; vals=' --user=none ' ;;
    'cluster/migrate') args='cluster node'; opts='--to --user --detach'; vals=' --to=none --user=none ' ;;
    'cluster/scale') args='cluster'; opts='--size --user --detach'; vals=' --size=none --user=none ' ;;
    'cluster/list' | 'cluster/ls') opts='--user'; vals=' --user=none ' ;;
    'cluster/show') args='cluster'; opts='--user'; vals=' --user=none ' ;;
    'cluster/exec') args='cluster node none...'; opts='-i --interactive --user'; vals=' --user=none ' ;;
    'env/create') args='none'; opts='-f --file --detach'; vals=' -f=path --file=path ' ;;
    'env/add') args='env none'; opts='--count -f --file --detach'; vals=' --count=none -f=path --file=path ' ;;
    'env/remove' | 'env/rm') args='env member'; opts='--detach' ;;
    'env/start') args='env'; opts='--detach' ;;
    'env/stop') args='env'; opts='--detach' ;;
    'env/suspend') args='env'; opts='--detach' ;;
    'env/resume') args='env'; opts='--detach' ;;
    'env/destroy') args='env'; opts='--detach' ;;
    'env/show') args='env' ;;
    'env/events') args='env'; opts='-f --follow' ;;
    'image/import') args='none path'; opts='--busybox --pool'; vals=' --pool=pool ' ;;
    'image/rm') args='image' ;;
    'image/save') args='cluster node none'; opts='--user --detach'; vals=' --user=none ' ;;
    'op/list' | 'op/ls') opts='--active' ;;
    'op/show') args='op' ;;
    'op/wait') args='op'; opts='--timeout'; vals=' --timeout=none ' ;;
    'op/cancel') args='op' ;;
    'op/run') args='op' ;;
    'op/gc') opts='--older-than'; vals=' --older-than=none ' ;;
    'events') opts='-f --follow --host --kind --since -n --tail'; vals=' --host=host --kind=c:job,op,host,dot,cluster,env --since=none -n=none --tail=none ' ;;
    'daemon') opts='--name --tags --listen --ttl --token-file --tls-cert --tls-key --max-connections --allow-host-mounts --no-allow-host-mounts --advertise --prune --no-prune --mode --share --drain-timeout --restart-grace --collect-every --leave-on-stop --no-leave-on-stop --hub'; vals=' --name=none --tags=none --listen=none --ttl=none --token-file=path --tls-cert=path --tls-key=path --max-connections=none --advertise=none --mode=c:recovery,new --share=path --drain-timeout=none --restart-grace=none --collect-every=none --hub=path ' ;;
    'onboot') opts='--storage-device --zpool-device --driver --pool --dot --seed --mountpoint --daemon'; vals=' --storage-device=path --zpool-device=path --driver=c:zfs,btrfs,lvm,dir --pool=pool --dot=dot --seed=none --mountpoint=path ' ;;
    'doctor') opts='--fix' ;;
    'completion') args='c:bash,zsh,fish' ;;
  esac
}
_knarr() {
  local cur prev cmd="" i w leaf="" act kids args opts vals
  local -a pos=() fwd=() a line
  # Words as typed, split at blanks only (COMP_WORDS also splits 8080:80 and image:tag at the colon).
  if [[ -n ${COMP_LINE-} ]]; then
    read -ra line <<< "${COMP_LINE:0:COMP_POINT}"
    [[ $COMP_POINT -eq 0 || ${COMP_LINE:COMP_POINT-1:1} == [[:space:]] ]] && line+=("")
  else
    line=("${COMP_WORDS[@]:0:COMP_CWORD+1}")
  fi
  local n=${#line[@]}
  cur="${line[n-1]}"
  prev="${line[n-2]}"
  local gvals=' -o=c:table,json,yaml,wide --output=c:table,json,yaml,wide --config=path --state-dir=path --etcd=none --etcd-ca=path --etcd-cert=path --etcd-key=path --etcd-user=none --etcd-password-file=path --fleet=none '
  local globals='--json --no-json -o --output --headers --no-headers --dry-run --no-dry-run -v --verbose --no-verbose -q --quiet --no-quiet --wait --no-wait --config --state-dir --etcd --etcd-ca --etcd-cert --etcd-key --etcd-user --etcd-password-file --fleet'
  _knarr_node ""
  for ((i = 1; i < n - 1; i++)); do
    w="${line[i]}"
    case "$w" in
      --config | --state-dir | --etcd | --etcd-ca | --etcd-cert | --etcd-key | --etcd-user | --etcd-password-file | --fleet) fwd+=("$w" "${line[i+1]}"); ((i++)); continue ;;
      -*) [[ "$gvals$vals" == *" $w="* ]] && ((i++)); continue ;;
    esac
    # Words after a leaf command are its arguments, not more of the path.
    if [[ -n $leaf ]]; then pos+=("$w"); continue; fi
    cmd="${cmd:+$cmd/}$w"
    _knarr_node "$cmd"
    [[ -z $kids ]] && leaf=1
  done
  if [[ "$gvals$vals" == *" $prev="* ]]; then
    act="${gvals}${vals}"; act="${act#*" $prev="}"; _knarr_value "${act%% *}"; return
  fi
  if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "$opts $globals" -- "$cur")); return; fi
  if [[ -z $leaf ]]; then COMPREPLY=($(compgen -W "$kids" -- "$cur")); return; fi
  a=($args)
  ((${#a[@]})) || return
  act="${a[${#pos[@]}]}"
  [[ -z $act && ${a[${#a[@]}-1]} == *... ]] && act="${a[${#a[@]}-1]}"
  _knarr_value "${act%...}"
}
complete -F _knarr knarr
