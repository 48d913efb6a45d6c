-- The gateway route map (issue 14): JSON array of {module, functionality, routes: [..]},
-- labels canonical, validated by keygate_shared::route::RouteMap::compile on save.
ALTER TABLE workspaces ADD COLUMN route_map TEXT NOT NULL DEFAULT '[]';
