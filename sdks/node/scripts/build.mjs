// Build dist/esm (ES modules) and dist/cjs (CommonJS), each with its type declarations.
// dist/cjs/package.json marks that folder CommonJS, since the package itself is "type": "module".
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const version = readFileSync(join(root, 'src', 'version.ts'), 'utf8').match(/VERSION = '([^']+)'/)?.[1];
if (version !== pkg.version) {
  console.error(`src/version.ts says ${version}, package.json says ${pkg.version}: make them equal`);
  process.exit(1);
}

rmSync(join(root, 'dist'), { recursive: true, force: true });
for (const project of ['tsconfig.json', 'tsconfig.cjs.json']) {
  execFileSync(process.execPath, [tsc, '-p', join(root, project)], { stdio: 'inherit', cwd: root });
}
mkdirSync(join(root, 'dist', 'cjs'), { recursive: true });
writeFileSync(join(root, 'dist', 'cjs', 'package.json'), '{\n  "type": "commonjs"\n}\n');
writeFileSync(join(root, 'dist', 'esm', 'package.json'), '{\n  "type": "module"\n}\n');
console.log(`built @stripemeter/sdk-node ${pkg.version}: dist/esm, dist/cjs`);
