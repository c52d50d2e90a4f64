import { flagKey, longFlag, SETTINGS } from '../core/settings.js';
import type { OptionDef } from './define.js';

/** What a command's flags from the settings table gave, by flag key (tokenFile, tags, prune); absent when not given. */
export type SettingFlags = Readonly<Record<string, string | readonly string[] | boolean>>;

/** The flags of the settings table that command takes (without one: the global flags); a boolean also gets its --no- form. */
export function settingOptions(command?: string): OptionDef[] {
  return SETTINGS.filter((s) => s.flag !== undefined && s.command === command).flatMap((s): OptionDef[] => {
    const shown = s.kind === 'boolean' || s.choices ? '' : ` (default ${s.defaultText})`;
    const opt: OptionDef = {
      flags: s.flag!,
      description: `${s.help}${shown}`,
      env: s.env,
      ...(s.choices ? { choices: s.choices } : {}),
      ...(s.repeatable ? { repeatable: true } : {}),
    };
    if (s.kind !== 'boolean') return [opt];
    return [
      opt,
      {
        flags: `--no-${longFlag(s)!.slice(2)}`,
        description:
          s.default === true
            ? `switch ${longFlag(s)} off (it is on unless ${s.env}${s.inFile === false ? '' : ' or the config file'} says false)`
            : `switch ${longFlag(s)} off when ${s.env}${s.inFile === false ? '' : ' or the config file'} switched it on`,
      },
    ];
  });
}

/**
 * Commander's values for the settings table's flags of one command: the table knows each flag, and its parser
 * checks the value; a --no- flag gives false, which switches off what env or the file switched on.
 */
export function settingFlags(command: string, opts: Readonly<Record<string, unknown>>): SettingFlags {
  const flags: Record<string, string | string[] | boolean> = {};
  for (const s of SETTINGS) {
    const key = s.command === command ? flagKey(s) : undefined;
    const v = key === undefined ? undefined : opts[key];
    if (key !== undefined && (typeof v === 'string' || typeof v === 'boolean')) flags[key] = v;
    else if (key !== undefined && Array.isArray(v)) flags[key] = v.map(String);
  }
  return flags;
}
