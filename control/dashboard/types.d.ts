// Types for the dashboard's JSDoc, derived from the OpenAPI document (`keygate openapi`) by
// `cargo xtask dashboard-types`, which writes target/dashboard/api.d.ts. Hand-written, not
// served (the browser never loads it).
//
//   /** @type {import('./types').Answer<'/api/v1/sdk-keys', 'get'>} */
//   const data = await get('/api/v1/sdk-keys');

import type { components, paths } from '../../target/dashboard/api';

/** The HTTP methods an operation may have. */
type Method = 'get' | 'put' | 'post' | 'delete' | 'patch';

/** The methods path `P` really has (openapi-typescript marks the others `?: never`). */
export type MethodOf<P extends keyof paths> = {
  [M in Method]-?: NonNullable<paths[P][M]> extends never ? never : M;
}[Method];

/** The operation for method `M` on path `P`. */
type Operation<P extends keyof paths, M extends MethodOf<P>> = NonNullable<paths[P][M]>;

/** Response keys that mean success. */
type SuccessStatus = 200 | 201 | 202 | 203 | '2XX';

/** The success responses of an operation. */
type Successes<O> = O extends { responses: infer R } ? R[Extract<keyof R, SuccessStatus>] : never;

/**
 * An operation with no JSON 2xx content (a 204, or a text answer): its answer is `unknown`,
 * so a page that reads a field of it fails the check.
 */
type Untyped = unknown;

/** The JSON of a response (or request body) object, or the fallback when there is none. */
type JsonOf<T> = [T] extends [never]
  ? Untyped
  : T extends { content: { 'application/json': infer J } }
    ? J
    : Untyped;

/** The JSON body of the 2xx answer of method `M` on path `P`. */
export type Answer<P extends keyof paths, M extends MethodOf<P>> = JsonOf<Successes<Operation<P, M>>>;

/** The JSON request body of method `M` on path `P`. */
export type Body<P extends keyof paths, M extends MethodOf<P>> = JsonOf<
  NonNullable<Operation<P, M>['requestBody']>
>;

/** A named schema of the OpenAPI document. */
export type Schema<N extends keyof components['schemas']> = components['schemas'][N];

/** Every path of the API. */
export type Path = keyof paths;
