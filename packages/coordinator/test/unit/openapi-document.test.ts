/**
 * The OpenAPI document, without a server: the checked-in copy is what the route table generates,
 * and an independent validator accepts it. That the server serves it is in openapi.test.ts.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { buildOpenApiDocument, openApiText } from '../../src/http/openapi.ts';
import { API_ROUTES } from '../../src/http/routes.ts';

const DOCS_FILE = fileURLToPath(new URL('../../../../docs/openapi.json', import.meta.url));

type Operation = {
  security?: unknown[];
  parameters?: { name: string; in: string; required: boolean }[];
  responses: Record<string, unknown>;
};
type Document = { paths: Record<string, Record<string, Operation>> };

describe('the OpenAPI document', () => {
  it('is checked in as docs/openapi.json exactly as generated (run `pnpm openapi` after changing a route)', () => {
    expect(readFileSync(DOCS_FILE, 'utf8')).toBe(openApiText(buildOpenApiDocument(API_ROUTES)));
  });

  it('is valid OpenAPI 3.1 for an independent validator', async () => {
    const validator = new Validator();
    const result = await validator.validate(buildOpenApiDocument(API_ROUTES));
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('an invalid document is refused by the same validator (the check can fail)', async () => {
    const document = buildOpenApiDocument(API_ROUTES);
    const broken = { ...document, paths: { '/x': { get: { responses: { 200: { content: 'no' } } } } } };
    expect((await new Validator().validate(broken)).valid).toBe(false);
  });

  it('lists every route of the table once, in OpenAPI form', () => {
    const { paths } = buildOpenApiDocument(API_ROUTES) as Document;
    const listed = Object.entries(paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => `${method} ${path}`),
    );
    expect(listed).toEqual(
      API_ROUTES.map((r) => `${r.method} ${r.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`),
    );
  });

  it('marks the probes open and documents 401 and 403 (the other kind of token) on every other route', () => {
    const { paths } = buildOpenApiDocument(API_ROUTES) as Document;
    for (const [path, ops] of Object.entries(paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const open = ['/healthz', '/readyz'].includes(path);
        expect(op.security, `${method} ${path}`).toEqual(open ? [] : undefined);
        expect(Object.keys(op.responses).includes('401'), `${method} ${path}`).toBe(!open);
        expect(Object.keys(op.responses).includes('403'), `${method} ${path}`).toBe(!open);
      }
    }
  });

  it('takes the query parameters from the schema that checks the query: required unless it may be left out', () => {
    const { paths } = buildOpenApiDocument(API_ROUTES) as Document;
    expect(paths['/v1/runs']?.get?.parameters).toMatchObject([
      { name: 'limit', in: 'query', required: false, schema: { default: 20, minimum: 1, maximum: 100 } },
      { name: 'cursor', in: 'query', required: false },
    ]);
    expect(
      paths['/v1/runs/{id}/events']?.get?.parameters?.map((p) => `${p.in} ${p.name} ${p.required}`),
    ).toEqual(['path id true', 'query last_event_id false', 'header last-event-id false']);
  });
});
