echo "built in stage build"
