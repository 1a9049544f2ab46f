"""Admin routes open to a caller holding no permission: shared by the route-permission and role-matrix tests."""

# The only admin routes without a permission, and why: nobody holds a permission before signing in
# (the API's sign-in, the console's sign-in page and its form post), and signing out needs only the
# session it ends (checked, with its CSRF token, by the route itself).
PUBLIC_ADMIN_ROUTES = {
    ("POST", "/admin/api/session"),
    ("DELETE", "/admin/api/session"),
    ("GET", "/admin/login"),
    ("POST", "/admin/login"),
    ("POST", "/admin/logout"),
}
