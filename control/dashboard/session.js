// Who is signed in and which workspaces they see, shared by the shell and the pages.

import { get } from './api.js';

/** The signed-in user, the organisation, the workspaces (filled by the shell). */
export const session = { user: null, organisation: null, organisations: [], workspaces: [] };

/** @typedef {import('./types').Answer<'/api/v1/workspace', 'get'>['workspaces'][number]} Workspace */

/** @param {Workspace} w */
export const wsId = (w) => String(w?.id ?? '');
/** @param {Workspace} w */
export const wsName = (w) => w?.name || 'Untitled workspace';
export const currentUserEmail = () => session.user?.email || '';
export const currentRole = () => String(session.user?.role || '').toLowerCase();
export const canManage = () => ['owner', 'admin'].includes(currentRole());

export async function loadWorkspaces() {
  /** @type {import('./types').Answer<'/api/v1/workspace', 'get'>} */
  const data = await get('/api/v1/workspace');
  session.workspaces = data.workspaces;
  return session.workspaces;
}
