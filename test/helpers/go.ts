/**
 * Go programs for the stack tests (test/targets/go/*.go), built with the `go` on PATH
 * into a cache under os.tmpdir() keyed by the source, the Go version and the build
 * settings, beside and renamed like helpers/targets.ts, so later runs start at once.
 * Each test skips, saying so, when there is no `go`.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { TOOL_ENV } from './elf';

const SOURCES = path.join(__dirname, '..', 'targets', 'go');
const CACHE = path.join(os.tmpdir(), 'iokit-snap-go');

/** `go version`'s output, or null when there is no go. */
export const goVersion: string | null = (() => {
  try {
    return execFileSync('go', ['version'], { encoding: 'utf8', env: TOOL_ENV, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
})();

/** A tap `skip` value: false with go, else the line that says what is missing. */
export const noGo: string | false = goVersion === null ? 'go is not installed (apt-get install golang-go)' : false;

export interface GoBuild {
  /** GOARCH: 'amd64' or 'arm64' (default: the host's). */
  arch?: 'amd64' | 'arm64';
  /** -ldflags, e.g. '-s -w' for a stripped binary. */
  ldflags?: string;
}

/**
 * `go build` of test/targets/go/`name`.go; the cached binary's path. For the host's arch
 * cgo stays as the toolchain has it (Debian ships std prebuilt that way, so a build takes
 * about a second); a cross build is CGO_ENABLED=0.
 */
export async function buildGo(name: string, build: GoBuild = {}): Promise<string> {
  if (goVersion === null) throw new Error('no go');
  const source = path.join(SOURCES, `${name}.go`);
  const arch = build.arch ?? (process.arch === 'arm64' ? 'arm64' : 'amd64');
  const flags = build.ldflags ? [`-ldflags=${build.ldflags}`] : [];
  const hash = createHash('sha256')
    .update(await fs.promises.readFile(source))
    .update(goVersion)
    .update(arch)
    .update(flags.join(' '))
    .digest('hex')
    .slice(0, 16);
  const dir = path.join(CACHE, hash);
  const binary = path.join(dir, name);
  if (fs.existsSync(binary)) return binary;
  await fs.promises.mkdir(dir, { recursive: true });
  const partial = `${binary}.${process.pid}.tmp`;
  const env = {
    ...TOOL_ENV,
    GOARCH: arch,
    GOOS: 'linux',
    ...(arch === (process.arch === 'arm64' ? 'arm64' : 'amd64') ? {} : { CGO_ENABLED: '0' }),
    GO111MODULE: 'off',
    GOFLAGS: '',
    // Its own build cache: the tests may run without a HOME.
    GOCACHE: path.join(CACHE, 'build-cache'),
    GOPATH: path.join(CACHE, 'gopath'),
  };
  await promisify(execFile)('go', ['build', ...flags, '-o', partial, source], { env, cwd: dir });
  await fs.promises.rename(partial, binary);
  return binary;
}
