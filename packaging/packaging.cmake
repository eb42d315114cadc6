# Install rules and the Debian package (CPack DEB). Included at the end of the top-level
# CMakeLists.txt, so every target it names already exists.
#
#   make deb                      # builds, then: cd build && cpack -G DEB
#   cmake --install build --prefix /tmp/stage   # the same layout, without a package
#
# What the package holds, and why nothing more:
#   /usr/bin/dialerd (and /usr/bin/dialerctl once that target exists)
#   /usr/lib/systemd/system/dialerd.service     the hardened unit, neither enabled nor started
#   /usr/share/doc/dialerd/examples/            commented dialerd.yaml and campaign.yaml
#   /usr/share/doc/dialerd/                     README, configuration and operations manuals
#   /usr/share/dialerd/grafana/dialerd.json     the Grafana dashboard
# No /etc/dialerd/dialerd.yaml: a working configuration names a real API key, real trunks and a
# real call list, and a placeholder one would either fail every start or, worse, start dialing
# the moment someone enables the unit. The operator copies an example, edits it and enables the
# unit on purpose. No maintainer scripts either: DynamicUser= needs no account, and
# StateDirectory= creates /var/lib/dialerd at the first start (it is kept on removal: it holds
# the call records).

include(GNUInstallDirs)

# Everything is installed relative to the prefix; the package's prefix is /usr. The unit goes to
# lib/systemd/system under it (/usr/lib/systemd/system: the merged-/usr location that systemd
# searches on Debian 12 and that Debian 13 requires).
install(TARGETS dialerd RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(TARGET dialerctl)
  install(TARGETS dialerctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(FILES ${PROJECT_SOURCE_DIR}/deploy/dialerd.service
        DESTINATION lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/examples/dialerd.yaml
              ${PROJECT_SOURCE_DIR}/deploy/examples/campaign.yaml
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(FILES ${PROJECT_SOURCE_DIR}/README.md
              ${PROJECT_SOURCE_DIR}/docs/configuration.md
              ${PROJECT_SOURCE_DIR}/docs/operations.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${PROJECT_SOURCE_DIR}/deploy/grafana/dialerd.json
        DESTINATION ${CMAKE_INSTALL_DATADIR}/dialerd/grafana)

# `cpack` builds the `preinstall` target first, which by default depends on `all`: every test
# and benchmark. The package needs only the installed targets, so `make deb` builds first and
# cpack packages what the build tree holds (tests/deploy checks that the result runs).
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY TRUE)

# project() declares no VERSION yet; until it does the package says 0.0.0 rather than guess.
if(PROJECT_VERSION)
  set(DIALERD_PACKAGE_VERSION ${PROJECT_VERSION})
else()
  set(DIALERD_PACKAGE_VERSION 0.0.0)
endif()
set(DIALERD_PACKAGE_MAINTAINER "dialerd maintainers <dialerd@localhost>"
    CACHE STRING "Maintainer field of the Debian package: Name <email>")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME dialerd)
set(CPACK_PACKAGE_VERSION ${DIALERD_PACKAGE_VERSION})
set(CPACK_PACKAGE_CONTACT ${DIALERD_PACKAGE_MAINTAINER})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "campaign dialer for Agentix outbound AI-voice calls")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Debian ships stripped binaries; debugging symbols would triple the package.
set(CPACK_STRIP_FILES TRUE)
# Only this project's install rules (none of its dependencies have any here).
set(CPACK_INSTALL_CMAKE_PROJECTS "${PROJECT_BINARY_DIR};${PROJECT_NAME};ALL;/")

set(CPACK_DEBIAN_PACKAGE_NAME dialerd)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # dialerd_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${DIALERD_PACKAGE_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The extended description; CPack puts CPACK_PACKAGE_DESCRIPTION_SUMMARY above it as the
# synopsis and indents each line by one space, as a Debian control file wants.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "dialerd reads campaign CSV files, normalises every number to E.164 and paces
calls/start requests to the Agentix API through token buckets capped at each
trunk's concurrency, over pooled keep-alive TLS connections. It dials each row
at most once, records every outcome in a SQLite state file, takes the calls'
results from webhooks, and runs as a hardened systemd service.")
# Library dependencies come from dpkg-shlibdeps, i.e. from the binaries themselves (libssl3,
# libsqlite3-0, libyaml-cpp0.7, libphonenumber8, libsimdjson14, libc6, ...), so they cannot
# drift from what the build links. ca-certificates is not a library: dialerd verifies the API's
# certificate against the system store, and without it every connection fails.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "ca-certificates")
# The unit needs systemd, but the binaries run without it (e.g. `dialerd export` on a copy).
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "systemd")
# Files 0644, directories and binaries 0755, whatever the build tree's umask was.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)

include(CPack)
