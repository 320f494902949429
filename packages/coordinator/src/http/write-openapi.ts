/**
 * `pnpm openapi`: rewrites docs/openapi.json from the route table (routes.ts). Run it after
 * changing a route or a request/response schema; a test fails while the copy is out of date.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildOpenApiDocument, openApiText } from './openapi.ts';
import { API_ROUTES } from './routes.ts';

export const OPENAPI_FILE = fileURLToPath(new URL('../../../../docs/openapi.json', import.meta.url));

writeFileSync(OPENAPI_FILE, openApiText(buildOpenApiDocument(API_ROUTES)));
process.stdout.write(`wrote ${OPENAPI_FILE}\n`);
