long long add_all(int n);
