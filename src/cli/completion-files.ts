export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

/** File each script is committed as, under completions/ (written by `npm run gen`, shipped with the package). */
export const COMPLETION_FILES: Record<Shell, string> = { bash: 'knarr.bash', zsh: '_knarr', fish: 'knarr.fish' };
