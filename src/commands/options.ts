/** Options that commands of several nouns define alike: one definition, so their help, completion and man pages say the same. */
export const userOption = { flags: '--user <user>', description: 'owner (default $KNARR_USER, else your login name)' } as const;
export const detachOption = { flags: '--detach', description: 'print the operation id and return at once' } as const;
