# gort_library(<name> <sources>...): the library target gort_<name>, exported
# and installed as gort::<name>, with the options every gort library shares:
# its public headers in <dir>/include (installed under include/gort), its
# internals in <dir>/src (private), C++20 for its users, the project's
# warnings, and clang's -Wthread-safety for the annotated locks.  Called from
# runtime/ and net/; a library adds only what is its own (dependencies).
function(gort_library name)
  set(target gort_${name})
  add_library(${target} ${ARGN})
  add_library(gort::${name} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${name} OUTPUT_NAME ${target})
  target_include_directories(${target}
    PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(${target} PRIVATE $<BUILD_INTERFACE:gort_build_flags>)
  target_compile_features(${target} PUBLIC cxx_std_20)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    target_compile_options(${target} PRIVATE -Wthread-safety)
  endif()
  install(TARGETS ${target} EXPORT gortTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(DIRECTORY include/gort DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endfunction()
